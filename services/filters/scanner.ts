// Tokenizer for filter expressions, with containerd's lexical rules.
//
// Tokens share one number space with characters: non-negative numbers are code points (the
// scanner hands back a character it cannot classify as itself), negative numbers are token kinds.
// Positions are UTF-16 indices into the input string.

export const Tok = {
  EOF: -1,
  Quoted: -2,
  Value: -3,
  Field: -4,
  Separator: -5,
  Operator: -6,
  Illegal: -7,
} as const;

export interface Token {
  pos: number;
  /** a Tok kind, or the code point of a character that starts no token */
  tok: number;
  /** the source text of the token (empty for EOF and bare characters) */
  text: string;
}

const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const REPLACEMENT = 0xfffd;

export class Scanner {
  /** start of the current character */
  pos = 0;
  /** just past the current character */
  ppos = 0;
  /** the first error met; sticky for the scanner's lifetime, like containerd's */
  err = '';
  /** an operator was just read, so the next word is a value */
  private inValue = false;

  constructor(readonly input: string) {}

  next(): number {
    const input = this.input;
    if (this.pos >= input.length) return Tok.EOF;
    this.pos = this.ppos;
    if (this.ppos >= input.length) return Tok.EOF;
    const c = input.codePointAt(this.ppos)!;
    this.ppos += c > 0xffff ? 2 : 1;
    // A lone surrogate is what invalid UTF-8 becomes in a JS string; U+FFFD is what a decoder
    // makes of it. containerd's scanner rejects both the same way.
    if (c === REPLACEMENT || (c >= 0xd800 && c <= 0xdfff)) {
      this.error('rune error');
      return Tok.Illegal;
    }
    if (c === 0) {
      this.error('unexpected null');
      return Tok.Illegal;
    }
    return c;
  }

  peek(): number {
    const { pos, ppos } = this;
    const c = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return c;
  }

  scan(): Token {
    let c = this.next();
    let pos = this.pos;
    for (;;) {
      if (c < 0) break; // EOF or illegal
      if (isQuoteChar(c)) {
        const ok = this.scanQuoted(c);
        return { pos, tok: ok ? Tok.Quoted : Tok.Illegal, text: this.input.slice(pos, this.ppos) };
      }
      if (isSeparatorChar(c)) {
        this.inValue = false;
        return { pos, tok: Tok.Separator, text: this.input.slice(pos, this.ppos) };
      }
      if (isOperatorChar(c)) {
        this.scanWhile(isOperatorChar);
        this.inValue = true;
        return { pos, tok: Tok.Operator, text: this.input.slice(pos, this.ppos) };
      }
      if (isSpace(c)) {
        c = this.next();
        pos = this.pos;
        continue;
      }
      if (this.inValue) {
        this.scanWhile(isValueChar);
        this.inValue = false;
        return { pos, tok: Tok.Value, text: this.input.slice(pos, this.ppos) };
      }
      if (isFieldChar(c)) {
        this.scanWhile(isFieldChar);
        return { pos, tok: Tok.Field, text: this.input.slice(pos, this.ppos) };
      }
      break;
    }
    return { pos: this.pos, tok: c, text: '' };
  }

  private scanWhile(pred: (c: number) => boolean): void {
    while (pred(this.peek())) this.next();
  }

  /** Reads up to the closing quote; false (with `err` set) if the literal is malformed. */
  private scanQuoted(quote: number): boolean {
    let legal = true;
    let c = this.next();
    while (c !== quote) {
      if (c === NEWLINE || c < 0) {
        this.error('quoted literal not terminated');
        return false;
      }
      if (c === BACKSLASH) {
        const [after, ok] = this.scanEscape(quote);
        c = after;
        if (!ok) legal = false;
      } else {
        c = this.next();
      }
    }
    return legal;
  }

  /** Called just after a backslash; returns the character following the escape. */
  private scanEscape(quote: number): [number, boolean] {
    const c = this.next();
    switch (c) {
      case 0x61: // a
      case 0x62: // b
      case 0x66: // f
      case 0x6e: // n
      case 0x72: // r
      case 0x74: // t
      case 0x76: // v
      case BACKSLASH:
      case quote:
        return [this.next(), true];
      case 0x78: // x
        return this.scanDigits(this.next(), 16, 2);
      case 0x75: // u
        return this.scanDigits(this.next(), 16, 4);
      case 0x55: // U
        return this.scanDigits(this.next(), 16, 8);
      default:
        if (c >= 0x30 && c <= 0x37) return this.scanDigits(c, 8, 3);
        this.error('illegal escape sequence');
        return [c, false];
    }
  }

  private scanDigits(c: number, base: number, n: number): [number, boolean] {
    while (n > 0 && digitValue(c) < base) {
      c = this.next();
      n--;
    }
    if (n > 0) {
      this.error('illegal numeric escape sequence');
      return [c, false];
    }
    return [c, true];
  }

  private error(msg: string): void {
    if (this.err === '') this.err = msg;
  }
}

function digitValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return 16;
}

function isFieldChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f;
}

function isOperatorChar(c: number): boolean {
  return c === 0x3d || c === 0x21 || c === 0x7e; // = ! ~
}

/** `"` always; `/` and `|` are scanned as quotes too, though only regexp values accept them. */
function isQuoteChar(c: number): boolean {
  return c === 0x22 || c === 0x2f || c === 0x7c;
}

function isSeparatorChar(c: number): boolean {
  return c === 0x2c || c === 0x2e; // , .
}

const WHITE_SPACE = /^\p{White_Space}$/u;
const GRAPHIC = /^[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]$/u;

/** Go's unicode.IsSpace: the Unicode White_Space property. */
export function isSpace(c: number): boolean {
  if (c < 0) return false;
  if (c < 0x80) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return WHITE_SPACE.test(String.fromCodePoint(c));
}

/** Anything printable except commas and white space. */
function isValueChar(c: number): boolean {
  if (c < 0x80) return c > 0x20 && c < 0x7f && c !== 0x2c;
  return !isSpace(c) && GRAPHIC.test(String.fromCodePoint(c));
}
