// Go (RE2) regular-expression syntax, translated into a JavaScript RegExp.
//
// containerd compiles `~=` values with Go's regexp package. We parse the pattern with Go's rules
// (what is accepted, what is rejected, and with which message) and emit an equivalent pattern
// for V8 in unicode mode. Only whether a match exists matters to filters, so greediness and
// capture groups are not preserved (every group becomes non-capturing).
//
// Differences in meaning that the translation takes care of:
//   - Go's `\s` is [\t\n\f\r ]; `\v`, `\a`, `\x{…}`, octal escapes, `\Q…\E`, `\A`, `\z`, POSIX
//     classes and escaped punctuation have no direct JS spelling in unicode mode;
//   - `]`, `}` and an unparsable `{` are literals in Go; `[]a]` is a class containing `]`;
//   - flags may change mid-pattern and per group: (?i) (?m) (?s) (?U), (?flags:…). Multi-line
//     anchors and (?s) dots are rewritten, and (?i) is spelled out: every character and class
//     is replaced by its closure under Unicode simple case folding, as Go computes it. (The JS
//     `i` flag is never used: it cannot be scoped in Node 20, and it differs from Go on
//     negated classes like (?i)\W or \P{Lu}, and on \b next to U+017F or U+212A.);
//   - Go may quantify anything, including assertions (`^*`) and repeats (`(?:a*)*`);
//   - Go bounds counted repetition at 1000, also when nested.

export class RegexpSyntaxError extends Error {
  constructor(code: string, expr: string) {
    super(`error parsing regexp: ${code}: \`${expr}\``);
    this.name = 'RegexpSyntaxError';
  }
}

// Go's error codes (regexp/syntax), used as message text.
const ErrInvalidCharRange = 'invalid character class range';
const ErrInvalidEscape = 'invalid escape sequence';
const ErrInvalidNamedCapture = 'invalid named capture';
const ErrInvalidPerlOp = 'invalid or unsupported Perl syntax';
const ErrInvalidRepeatOp = 'invalid nested repetition operator';
const ErrInvalidRepeatSize = 'invalid repeat count';
const ErrMissingBracket = 'missing closing ]';
const ErrMissingParen = 'missing closing )';
const ErrMissingRepeatArgument = 'missing argument to repetition operator';
const ErrTrailingBackslash = 'trailing backslash at end of expression';
const ErrUnexpectedParen = 'unexpected )';
const ErrNestingDepth = 'expression nests too deeply';

const MAX_REPEAT = 1000;
const MAX_DEPTH = 1000;
const MAX_RUNE = 0x10ffff;

/** Compiles a Go regexp into a JS RegExp; throws RegexpSyntaxError where Go would fail. */
export function compileRegexp(pattern: string): RegExp {
  const source = new Translator(pattern).run();
  try {
    return new RegExp(source, 'u');
  } catch (err) {
    throw new RegexpSyntaxError((err as Error).message, pattern);
  }
}

// Parse-state flags.
const FOLD = 1; // (?i)
const MULTILINE = 2; // (?m)
const DOTNL = 4; // (?s)
const UNGREEDY = 8; // (?U)

type Range = [number, number];

interface Item {
  src: string;
  /** largest product of counted repetitions along any path inside (for Go's size limit) */
  weight: number;
  /** can take a quantifier as is */
  atomic: boolean;
}

interface Frame {
  alternatives: string[];
  weight: number;
  items: Item[];
  /** flags to restore at the closing parenthesis */
  saved: number;
}

class Translator {
  private i = 0;
  private flags = 0;
  private readonly frames: Frame[] = [{ alternatives: [], weight: 1, items: [], saved: 0 }];

  constructor(private readonly p: string) {}

  /** The JS pattern source. */
  run(): string {
    const p = this.p;
    let lastRepeat = -1; // start of the previous token when it was a repetition operator
    while (this.i < p.length) {
      let repeat = -1;
      const c = p[this.i];
      switch (c) {
        case '(':
          if (p[this.i + 1] === '?') this.parseGroupFlags();
          else {
            this.open(this.flags);
            this.i++;
          }
          break;
        case '|':
          this.endAlternative();
          this.i++;
          break;
        case ')':
          this.close();
          this.i++;
          break;
        case '^':
          this.push({ src: this.flags & MULTILINE ? '(?<![^\\n])' : '^', weight: 1, atomic: false });
          this.i++;
          break;
        case '$':
          this.push({ src: this.flags & MULTILINE ? '(?![^\\n])' : '$', weight: 1, atomic: false });
          this.i++;
          break;
        case '.':
          this.push({ src: this.flags & DOTNL ? '[^]' : '[^\\n]', weight: 1, atomic: true });
          this.i++;
          break;
        case '[':
          this.parseClass();
          break;
        case '*':
        case '+':
        case '?':
          repeat = this.i;
          this.repeat(c, 0, 0, lastRepeat);
          break;
        case '{': {
          const r = this.parseRepeat(this.i);
          if (!r) {
            this.literal(0x7b);
            this.i++;
            break;
          }
          const [min, max, end] = r;
          if (min < 0 || min > MAX_REPEAT || max > MAX_REPEAT || (max >= 0 && min > max)) {
            throw new RegexpSyntaxError(ErrInvalidRepeatSize, p.slice(this.i, end));
          }
          repeat = this.i;
          this.repeat('{', min, max, lastRepeat, end);
          break;
        }
        case '\\':
          this.parseBackslash();
          break;
        default: {
          const cp = p.codePointAt(this.i)!;
          this.literal(cp);
          this.i += cp > 0xffff ? 2 : 1;
        }
      }
      lastRepeat = repeat;
    }
    if (this.frames.length > 1) throw new RegexpSyntaxError(ErrMissingParen, p);
    this.endAlternative();
    return this.frames[0].alternatives.join('|');
  }

  // --- structure ---

  private get top(): Frame {
    return this.frames[this.frames.length - 1];
  }

  private push(item: Item): void {
    this.top.items.push(item);
  }

  private open(saved: number): void {
    if (this.frames.length > MAX_DEPTH) throw new RegexpSyntaxError(ErrNestingDepth, this.p);
    this.frames.push({ alternatives: [], weight: 1, items: [], saved });
  }

  private endAlternative(): void {
    const f = this.top;
    let src = '';
    for (const it of f.items) {
      src += it.src;
      if (it.weight > f.weight) f.weight = it.weight;
    }
    f.alternatives.push(src);
    f.items = [];
  }

  private close(): void {
    if (this.frames.length === 1) throw new RegexpSyntaxError(ErrUnexpectedParen, this.p);
    this.endAlternative();
    const f = this.frames.pop()!;
    this.flags = f.saved;
    this.push({ src: `(?:${f.alternatives.join('|')})`, weight: f.weight, atomic: true });
  }

  /** After `(?`: named groups, non-capturing groups and flag changes. */
  private parseGroupFlags(): void {
    const p = this.p;
    const start = this.i;
    const named = p.startsWith('(?P<', start) && p.length - start > 4 ? 4 : p[start + 2] === '<' && p.length - start > 3 ? 3 : 0;
    if (named) {
      const end = p.indexOf('>', start);
      if (end < 0) throw new RegexpSyntaxError(ErrInvalidNamedCapture, p.slice(start));
      const name = p.slice(start + named, end);
      if (!/^[A-Za-z0-9_]+$/.test(name)) throw new RegexpSyntaxError(ErrInvalidNamedCapture, p.slice(start, end + 1));
      this.open(this.flags);
      this.i = end + 1;
      return;
    }

    let flags = this.flags;
    let negate = false;
    let sawFlag = false;
    let j = start + 2;
    while (j < p.length) {
      const c = p[j];
      j += p.codePointAt(j)! > 0xffff ? 2 : 1;
      const bit = c === 'i' ? FOLD : c === 'm' ? MULTILINE : c === 's' ? DOTNL : c === 'U' ? UNGREEDY : 0;
      if (bit) {
        flags = negate ? flags & ~bit : flags | bit;
        sawFlag = true;
        continue;
      }
      if (c === '-') {
        if (negate) break;
        negate = true;
        sawFlag = false;
        continue;
      }
      if (c === ':' || c === ')') {
        if (negate && !sawFlag) break;
        if (c === ':') this.open(this.flags);
        this.flags = flags;
        this.i = j;
        return;
      }
      break;
    }
    throw new RegexpSyntaxError(ErrInvalidPerlOp, p.slice(start, j));
  }

  /** `{min,max}` at `at`: [min, max (-1: unbounded), index after `}`], or null if `{` is a literal. */
  private parseRepeat(at: number): [number, number, number] | null {
    const p = this.p;
    let j = at + 1;
    const lo = parseDecimal(p, j);
    if (!lo) return null;
    let min = lo[0];
    let max: number;
    j = lo[1];
    if (j >= p.length) return null;
    if (p[j] !== ',') {
      max = min;
    } else {
      j++;
      if (j >= p.length) return null;
      if (p[j] === '}') {
        max = -1;
      } else {
        const hi = parseDecimal(p, j);
        if (!hi) return null;
        [max, j] = hi;
        if (max < 0) min = -1;
      }
    }
    if (j >= p.length || p[j] !== '}') return null;
    return [min, max, j + 1];
  }

  /** Applies `*`, `+`, `?` or `{…}` (ending at `end`) to the previous item. */
  private repeat(op: string, min: number, max: number, lastRepeat: number, end = this.i + 1): void {
    const p = this.p;
    const start = this.i;
    let lazy = false;
    if (p[end] === '?') {
      lazy = true;
      end++;
    }
    if (lastRepeat >= 0) throw new RegexpSyntaxError(ErrInvalidRepeatOp, p.slice(lastRepeat, end));
    const items = this.top.items;
    const sub = items.pop();
    if (!sub) throw new RegexpSyntaxError(ErrMissingRepeatArgument, p.slice(start, end));

    let weight = sub.weight;
    let quantifier = op;
    if (op === '{') {
      quantifier = max === min ? `{${min}}` : max < 0 ? `{${min},}` : `{${min},${max}}`;
      const m = max < 0 ? min : max;
      if (max === 0) weight = 1;
      else if (m > 0) weight = m * sub.weight;
      if ((min >= 2 || max >= 2) && weight > MAX_REPEAT) {
        throw new RegexpSyntaxError(ErrInvalidRepeatSize, p.slice(start, end));
      }
    }
    if (lazy !== Boolean(this.flags & UNGREEDY)) quantifier += '?';
    const base = sub.atomic ? sub.src : `(?:${sub.src})`;
    items.push({ src: base + quantifier, weight, atomic: false });
    this.i = end;
  }

  // --- atoms ---

  private literal(cp: number): void {
    const orbit = this.flags & FOLD ? foldOrbit(cp) : [cp];
    const src = orbit.length > 1 ? classSource(normalize(orbit.map((c): Range => [c, c])), false, '') : escapeCodePoint(cp);
    this.push({ src, weight: 1, atomic: true });
  }

  private parseBackslash(): void {
    const p = this.p;
    const at = this.i;
    switch (p[at + 1]) {
      case 'A':
        this.push({ src: '^', weight: 1, atomic: false });
        this.i += 2;
        return;
      case 'z':
        this.push({ src: '$', weight: 1, atomic: false });
        this.i += 2;
        return;
      case 'b':
        this.push({ src: '\\b', weight: 1, atomic: false });
        this.i += 2;
        return;
      case 'B':
        this.push({ src: '\\B', weight: 1, atomic: false });
        this.i += 2;
        return;
      case 'C':
        throw new RegexpSyntaxError(ErrInvalidEscape, '\\C');
      case 'Q': {
        let end = p.indexOf('\\E', at + 2);
        const lit = end < 0 ? p.slice(at + 2) : p.slice(at + 2, end);
        end = end < 0 ? p.length : end + 2;
        for (const ch of lit) this.literal(ch.codePointAt(0)!);
        this.i = end;
        return;
      }
      case 'p':
      case 'P':
      case 'd':
      case 'D':
      case 's':
      case 'S':
      case 'w':
      case 'W': {
        const cls = this.newClass();
        this.i = this.classEscape(cls, at)!;
        this.pushClass(cls, false);
        return;
      }
    }
    const [cp, end] = this.parseEscape(at);
    this.literal(cp);
    this.i = end;
  }

  /** A single-character escape at `at` (a backslash): [code point, index after]. */
  private parseEscape(at: number): [number, number] {
    const p = this.p;
    let j = at + 1;
    if (j >= p.length) throw new RegexpSyntaxError(ErrTrailingBackslash, '');
    const nextChar = (): number => {
      const c = p.codePointAt(j)!;
      j += c > 0xffff ? 2 : 1;
      return c;
    };
    const isOctal = (k: number) => k < p.length && p[k] >= '0' && p[k] <= '7';
    const c = nextChar();
    const ch = String.fromCodePoint(c);
    escape: {
      if (ch >= '1' && ch <= '7' && !isOctal(j)) break escape; // a backreference; not supported
      if (ch >= '0' && ch <= '7') {
        let r = c - 0x30;
        for (let k = 1; k < 3 && isOctal(j); k++) r = r * 8 + (p.charCodeAt(j++) - 0x30);
        return [r, j];
      }
      switch (ch) {
        case 'x': {
          if (j >= p.length) break escape;
          const first = nextChar();
          if (first === 0x7b) {
            let r = 0;
            let digits = 0;
            for (;;) {
              if (j >= p.length) break escape;
              const d = nextChar();
              if (d === 0x7d) break;
              const v = hexValue(d);
              if (v < 0) break escape;
              r = r * 16 + v;
              if (r > MAX_RUNE) break escape;
              digits++;
            }
            if (digits === 0) break escape;
            return [r, j];
          }
          const hi = hexValue(first);
          const lo = j < p.length ? hexValue(nextChar()) : -1;
          if (hi < 0 || lo < 0) break escape;
          return [hi * 16 + lo, j];
        }
        case 'a': return [0x07, j];
        case 'f': return [0x0c, j];
        case 'n': return [0x0a, j];
        case 'r': return [0x0d, j];
        case 't': return [0x09, j];
        case 'v': return [0x0b, j];
      }
      if (c < 0x80 && !/[0-9A-Za-z]/.test(ch)) return [c, j]; // escaped punctuation
    }
    throw new RegexpSyntaxError(ErrInvalidEscape, p.slice(at, j));
  }

  // --- character classes ---

  private newClass(): ClassBuilder {
    return new ClassBuilder(Boolean(this.flags & FOLD));
  }

  private pushClass(cls: ClassBuilder, negated: boolean): void {
    this.push({ src: cls.source(negated), weight: 1, atomic: true });
  }

  /**
   * A `\p{…}`, `\P{…}` or Perl class (`\d`, …) at `at`, added to `cls`; returns the index after
   * it, or null when the backslash starts something else.
   */
  private classEscape(cls: ClassBuilder, at: number): number | null {
    const p = this.p;
    const letter = p[at + 1];
    if (letter === 'p' || letter === 'P') return this.unicodeClass(cls, at);
    const group = PERL_GROUPS[letter];
    if (!group) return null;
    cls.addGroup(group.ranges, group.negated);
    return at + 2;
  }

  private unicodeClass(cls: ClassBuilder, at: number): number {
    const p = this.p;
    let negated = p[at + 1] === 'P';
    let name: string;
    let seq: string;
    let end: number;
    if (at + 2 >= p.length) {
      name = '';
      seq = p.slice(at, at + 2);
      end = at + 2;
    } else if (p[at + 2] !== '{') {
      const c = p.codePointAt(at + 2)!;
      end = at + 2 + (c > 0xffff ? 2 : 1);
      seq = p.slice(at, end);
      name = seq.slice(2);
    } else {
      const close = p.indexOf('}', at);
      if (close < 0) throw new RegexpSyntaxError(ErrInvalidCharRange, p.slice(at));
      seq = p.slice(at, close + 1);
      name = p.slice(at + 3, close);
      end = close + 1;
    }
    if (name.startsWith('^')) {
      negated = !negated;
      name = name.slice(1);
    }
    const prop = unicodeProperty(name);
    if (!prop) throw new RegexpSyntaxError(ErrInvalidCharRange, seq);
    if ('ranges' in prop) cls.addGroup(prop.ranges, negated);
    else cls.addProperty(prop.src, prop.inverted !== negated);
    return end;
  }

  private parseClass(): void {
    const p = this.p;
    const start = this.i;
    let j = start + 1;
    let negated = false;
    if (p[j] === '^') {
      negated = true;
      j++;
    }
    const cls = this.newClass();
    let first = true; // `]` is a literal when it comes first
    while (j >= p.length || p[j] !== ']' || first) {
      first = false;
      if (p.startsWith('[:', j) && p.length - j > 2) {
        const close = p.indexOf(':]', j + 2);
        if (close >= 0) {
          const spelled = p.slice(j, close + 2);
          const group = POSIX_GROUPS[spelled];
          if (!group) throw new RegexpSyntaxError(ErrInvalidCharRange, spelled);
          cls.addGroup(group.ranges, group.negated);
          j = close + 2;
          continue;
        }
      }
      if (p[j] === '\\') {
        const after = this.classEscape(cls, j);
        if (after !== null) {
          j = after;
          continue;
        }
      }
      const rangeStart = j;
      let lo: number;
      [lo, j] = this.classChar(j, start);
      let hi = lo;
      if (j + 1 < p.length && p[j] === '-' && p[j + 1] !== ']') {
        [hi, j] = this.classChar(j + 1, start);
        if (hi < lo) throw new RegexpSyntaxError(ErrInvalidCharRange, p.slice(rangeStart, j));
      }
      cls.addRange(lo, hi);
    }
    this.i = j + 1;
    this.pushClass(cls, negated);
  }

  private classChar(at: number, classStart: number): [number, number] {
    const p = this.p;
    if (at >= p.length) throw new RegexpSyntaxError(ErrMissingBracket, p.slice(classStart));
    if (p[at] === '\\') return this.parseEscape(at);
    const c = p.codePointAt(at)!;
    return [c, at + (c > 0xffff ? 2 : 1)];
  }
}

function parseDecimal(p: string, at: number): [number, number] | null {
  let j = at;
  while (j < p.length && p[j] >= '0' && p[j] <= '9') j++;
  if (j === at) return null;
  if (j - at >= 2 && p[at] === '0') return null; // no leading zeros
  let n = 0;
  for (let k = at; k < j; k++) {
    if (n >= 1e8) return [-1, j];
    n = n * 10 + (p.charCodeAt(k) - 0x30);
  }
  return [n, j];
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** A code point as JS pattern source, safe both inside and outside classes in unicode mode. */
function escapeCodePoint(c: number): string {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f) {
    return String.fromCharCode(c);
  }
  return `\\u{${c.toString(16)}}`;
}

// --- class arithmetic ---

/**
 * The members of one class: ranges, Unicode property escapes, and complements of property
 * escapes (which a JS class cannot hold once folded, so they are spelled with lookarounds).
 */
class ClassBuilder {
  private readonly ranges: Range[] = [];
  private readonly properties: string[] = [];
  private readonly complements: string[] = [];

  /** @param fold close every member under case folding, for (?i) */
  constructor(private readonly fold: boolean) {}

  addRange(lo: number, hi: number): void {
    if (this.fold) this.ranges.push(...foldRange(lo, hi));
    else this.ranges.push([lo, hi]);
  }

  /** Go folds a named group before negating it: (?i)\W excludes s, S, k and K. */
  addGroup(ranges: readonly Range[], negated: boolean): void {
    let r: Range[] = this.fold ? normalize(ranges.flatMap(([lo, hi]) => foldRange(lo, hi))) : [...ranges];
    if (negated) r = complement(r);
    this.ranges.push(...r);
  }

  /** A property given as JS class-body source; `inverted` for its complement. */
  addProperty(src: string, inverted: boolean): void {
    const body = this.fold ? src + classBody(foldExtras(src)) : src;
    if (!inverted) this.properties.push(body);
    else if (/^\\p\{[^}]*\}$/.test(body)) this.properties.push(`\\P${body.slice(2)}`);
    else this.complements.push(body);
  }

  source(negated: boolean): string {
    const ranges = normalize(this.ranges);
    const extra = this.properties.join('');
    if (this.complements.length === 0) return classSource(ranges, negated, extra);
    const positive = ranges.length > 0 || extra ? [`[${classBody(ranges)}${extra}]`] : [];
    const complements = this.complements;
    if (!negated) return `(?:${[...positive, ...complements.map((b) => `[^${b}]`)].join('|')})`;
    // Outside the positive members, inside every complemented set.
    const guards = [...positive.map((p) => `(?!${p})`), ...complements.slice(0, -1).map((b) => `(?=[${b}])`)];
    return `(?:${guards.join('')}[${complements[complements.length - 1]}])`;
  }
}

function classSource(ranges: Range[], negated: boolean, extra: string): string {
  if (!negated && !extra && ranges.length === 1 && ranges[0][0] === ranges[0][1]) return escapeCodePoint(ranges[0][0]);
  return `[${negated ? '^' : ''}${classBody(ranges)}${extra}]`;
}

function classBody(ranges: readonly Range[]): string {
  let body = '';
  for (const [lo, hi] of ranges) {
    body += lo === hi ? escapeCodePoint(lo) : `${escapeCodePoint(lo)}-${escapeCodePoint(hi)}`;
  }
  return body;
}

/** Sorted, merged, non-overlapping ranges. */
function normalize(ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const out: Range[] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) {
      if (hi > last[1]) last[1] = hi;
    } else {
      out.push([lo, hi]);
    }
  }
  return out;
}

function complement(ranges: readonly Range[]): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of normalize(ranges)) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_RUNE) out.push([next, MAX_RUNE]);
  return out;
}

// --- case folding ---

// Code points that take part in case folding lie in this span (as in Go's regexp/syntax).
const MIN_FOLD = 0x41;
const MAX_FOLD = 0x1e943;

function foldRange(lo: number, hi: number): Range[] {
  const out: Range[] = [[lo, hi]];
  if (hi < MIN_FOLD || lo > MAX_FOLD || (lo <= MIN_FOLD && hi >= MAX_FOLD)) return out;
  for (let c = Math.max(lo, MIN_FOLD); c <= Math.min(hi, MAX_FOLD); c++) {
    for (const f of foldOrbit(c)) if (f < lo || f > hi) out.push([f, f]);
  }
  return out;
}

// Simple-case-folding orbits that toLowerCase/toUpperCase do not reveal from every member
// (generated by comparing against V8's /…/iu matching over the whole folding span), plus
// U+0131, whose upper case is not fold-equivalent to it.
const IRREGULAR_ORBITS =
  '4b 6b 212a,53 73 17f,b5 39c 3bc,c5 e5 212b,1c4 1c5 1c6,1c7 1c8 1c9,1ca 1cb 1cc,1f1 1f2 1f3,' +
  '345 399 3b9 1fbe,392 3b2 3d0,395 3b5 3f5,398 3b8 3d1 3f4,39a 3ba 3f0,3a0 3c0 3d6,3a1 3c1 3f1,' +
  '3a3 3c2 3c3,3a6 3c6 3d5,3a9 3c9 2126,412 432 1c80,414 434 1c81,41e 43e 1c82,421 441 1c83,' +
  '422 442 1c84 1c85,42a 44a 1c86,462 463 1c87,1c88 a64a a64b,1e60 1e61 1e9b,df 1e9e,' +
  '1f80 1f88,1f81 1f89,1f82 1f8a,1f83 1f8b,1f84 1f8c,1f85 1f8d,1f86 1f8e,1f87 1f8f,' +
  '1f90 1f98,1f91 1f99,1f92 1f9a,1f93 1f9b,1f94 1f9c,1f95 1f9d,1f96 1f9e,1f97 1f9f,' +
  '1fa0 1fa8,1fa1 1fa9,1fa2 1faa,1fa3 1fab,1fa4 1fac,1fa5 1fad,1fa6 1fae,1fa7 1faf,' +
  '1fb3 1fbc,1fc3 1fcc,1ff3 1ffc,390 1fd3,3b0 1fe3,fb05 fb06,131';

let irregular: Map<number, readonly number[]> | undefined;

/** The code points equivalent to `c` under Unicode simple case folding, `c` included. */
export function foldOrbit(c: number): readonly number[] {
  if (c < MIN_FOLD || c > MAX_FOLD) return [c];
  if (!irregular) {
    irregular = new Map();
    for (const orbit of IRREGULAR_ORBITS.split(',')) {
      const members = orbit.split(' ').map((h) => parseInt(h, 16));
      for (const m of members) irregular.set(m, members);
    }
  }
  const known = irregular.get(c);
  if (known) return known;
  const out = [c];
  const add = (s: string) => {
    const cp = s.codePointAt(0)!;
    if (s.length === (cp > 0xffff ? 2 : 1) && !out.includes(cp)) out.push(cp);
  };
  const ch = String.fromCodePoint(c);
  const lower = ch.toLowerCase();
  const upper = ch.toUpperCase();
  add(lower);
  add(upper);
  add(lower.toUpperCase());
  add(upper.toLowerCase());
  return out;
}

let casedCodePoints: number[] | undefined;
const foldExtrasCache = new Map<string, Range[]>();

/** What folding adds to a property (JS class-body source): e.g. U+00B5 MICRO SIGN to \p{Greek}. */
function foldExtras(src: string): Range[] {
  let extras = foldExtrasCache.get(src);
  if (!extras) {
    if (!casedCodePoints) {
      casedCodePoints = [];
      for (let c = MIN_FOLD; c <= MAX_FOLD; c++) if (foldOrbit(c).length > 1) casedCodePoints.push(c);
    }
    const re = new RegExp(`^[${src}]$`, 'u');
    const inSet = (c: number) => re.test(String.fromCodePoint(c));
    extras = normalize(casedCodePoints.filter((c) => !inSet(c) && foldOrbit(c).some(inSet)).map((c): Range => [c, c]));
    foldExtrasCache.set(src, extras);
  }
  return extras;
}

// --- named classes ---

interface Group {
  ranges: Range[];
  negated: boolean;
}

const DIGIT: Range[] = [[0x30, 0x39]];
const SPACE: Range[] = [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]];
const WORD: Range[] = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];

const PERL_GROUPS: Record<string, Group | undefined> = {
  d: { ranges: DIGIT, negated: false },
  D: { ranges: DIGIT, negated: true },
  s: { ranges: SPACE, negated: false },
  S: { ranges: SPACE, negated: true },
  w: { ranges: WORD, negated: false },
  W: { ranges: WORD, negated: true },
};

const POSIX: Record<string, Range[]> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: DIGIT,
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: WORD,
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};

const POSIX_GROUPS: Record<string, Group | undefined> = Object.create(null);
for (const [name, ranges] of Object.entries(POSIX)) {
  POSIX_GROUPS[`[:${name}:]`] = { ranges, negated: false };
  POSIX_GROUPS[`[:^${name}:]`] = { ranges, negated: true };
}

// Go's general categories (its tables have no Cn, and its C excludes unassigned code points).
const CATEGORIES = new Set(
  'C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs'.split(' '),
);

/** Explicit ranges, or JS class-body source (of the complement when `inverted`). */
type Property = { ranges: Range[] } | { src: string; inverted: boolean };
const propertyCache = new Map<string, Property | null>();

/** A Unicode class name as Go accepts it after \p: Any, a general category, or a script. */
function unicodeProperty(name: string): Property | null {
  let prop = propertyCache.get(name);
  if (prop === undefined) {
    prop = lookupProperty(name);
    propertyCache.set(name, prop);
  }
  return prop;
}

function lookupProperty(name: string): Property | null {
  const canonical = canonicalName(name);
  switch (canonical) {
    case 'Any':
      return { ranges: [[0, MAX_RUNE]] };
    case 'Ascii':
      return { ranges: [[0, 0x7f]] };
    case 'Assigned':
      return { src: '\\p{Cn}', inverted: true };
    case 'C':
      return { src: '\\p{Cc}\\p{Cf}\\p{Co}\\p{Cs}', inverted: false };
    case 'Lc':
      return { src: '\\p{LC}', inverted: false };
  }
  if (CATEGORIES.has(canonical)) return { src: `\\p{${canonical}}`, inverted: false };
  for (const candidate of [`Script=${name}`, `Script=${canonical}`, name.length > 2 ? `General_Category=${name}` : '']) {
    if (!candidate) continue;
    try {
      new RegExp(`\\p{${candidate}}`, 'u');
      return { src: `\\p{${candidate}}`, inverted: false };
    } catch {
      // not a name V8 knows
    }
  }
  return null;
}

/** Go's lookup key: leading capital, lower case after, no `_`, `-` or spaces. */
function canonicalName(name: string): string {
  const bare = name.replace(/[_\- ]/g, '');
  return bare.charAt(0).toUpperCase() + bare.slice(1).toLowerCase();
}
