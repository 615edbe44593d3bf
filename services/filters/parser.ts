// containerd's filter grammar:
//
//   selectors := selector ("," selector)*
//   selector  := fieldpath (operator value)?
//   fieldpath := field ("." field)*
//   field     := quoted | [A-Za-z0-9_]+
//   operator  := "==" | "!=" | "~="
//   value     := quoted | [^\s,]+
//   quoted    := a Go string literal in "…"; after ~= also /…/ or |…|
//
// A filter string is the AND of its selectors; parseAll ORs several filter strings.

import { BerthError } from '../errdefs';
import type { Adaptor } from './adaptor';
import { unquote, QuoteSyntaxError, type Unquoted } from './quote';
import { compileRegexp, RegexpSyntaxError } from './regexp';
import { Scanner, Tok } from './scanner';

export interface Filter {
  match(adaptor: Adaptor): boolean;
}

/** Matches everything. */
export const Always: Filter = Object.freeze({ match: () => true });

class AnyOf implements Filter {
  constructor(private readonly filters: readonly Filter[]) {}
  match(adaptor: Adaptor): boolean {
    for (const f of this.filters) if (f.match(adaptor)) return true;
    return false;
  }
}

class AllOf implements Filter {
  constructor(private readonly filters: readonly Filter[]) {}
  match(adaptor: Adaptor): boolean {
    for (const f of this.filters) if (!f.match(adaptor)) return false;
    return true;
  }
}

type Operator = '==' | '!=' | '~=';

/**
 * One selector. An absent field compares as the empty string, as in containerd: `name!=x` and
 * `name~=^$` both match objects without a name, `name==""` never matches.
 */
class Selector implements Filter {
  constructor(
    /** null when a quoted field name is not valid UTF-8: no object can have that field */
    private readonly path: string[] | null,
    private readonly op: Operator | null,
    private readonly value: string,
    /** false when the quoted value is not valid UTF-8: no JS string equals it */
    private readonly valueWellFormed: boolean,
    private readonly re: RegExp | null,
  ) {}

  match(adaptor: Adaptor): boolean {
    const v = this.path ? adaptor.field(this.path) : undefined;
    switch (this.op) {
      case null:
        return v !== undefined;
      case '==':
        return v !== undefined && this.valueWellFormed && v === this.value;
      case '!=':
        return !this.valueWellFormed || (v ?? '') !== this.value;
      case '~=':
        return this.re!.test(v ?? '');
    }
  }
}

/** Parses one filter string; the empty string matches everything. */
export function parse(expr: string): Filter {
  if (expr === '') return Always;
  return new Parser(expr).parse();
}

/** Parses several filter strings, any of which may match; no strings at all match everything. */
export function parseAll(exprs: readonly string[]): Filter {
  const filters = exprs.map(parse);
  if (filters.length === 0 || filters.includes(Always)) return Always;
  return filters.length === 1 ? filters[0] : new AnyOf(filters);
}

class Parser {
  private readonly scanner: Scanner;

  constructor(private readonly input: string) {
    this.scanner = new Scanner(input);
  }

  parse(): Filter {
    const selectors = [this.selector()];
    for (;;) {
      const c = this.scanner.peek();
      if (c === Tok.EOF) break;
      if (c !== 0x2c /* , */) {
        const shown = c < 0 ? '\ufffd' : String.fromCodePoint(c);
        this.fail(this.scanner.ppos, `unexpected input: ${shown}`);
      }
      this.scanner.scan(); // the comma
      selectors.push(this.selector());
    }
    return selectors.length === 1 ? selectors[0] : new AllOf(selectors);
  }

  private selector(): Selector {
    const path = this.fieldpath();
    const c = this.scanner.peek();
    if (c === 0x2c || c === Tok.EOF) return new Selector(path, null, '', true, null);

    const op = this.operator();
    const { pos, value, wellFormed } = this.value(op === '~=');
    let re: RegExp | null = null;
    if (op === '~=') {
      try {
        if (!wellFormed) throw new RegexpSyntaxError('invalid UTF-8', value);
        re = compileRegexp(value);
      } catch (err) {
        if (!(err instanceof RegexpSyntaxError)) throw err;
        this.fail(pos, err.message);
      }
    }
    return new Selector(path, op, value, wellFormed, re);
  }

  private fieldpath(): string[] | null {
    let wellFormed = true;
    const fields: string[] = [];
    const field = () => {
      const f = this.field();
      fields.push(f.value);
      wellFormed &&= f.wellFormed;
    };
    field();
    while (this.scanner.peek() === 0x2e /* . */) {
      this.scanner.scan();
      field();
    }
    return wellFormed ? fields : null;
  }

  private field(): Unquoted {
    const { pos, tok, text } = this.scanner.scan();
    switch (tok) {
      case Tok.Field:
        return { value: text, wellFormed: true };
      case Tok.Quoted:
        return this.unquote(pos, text, false);
      case Tok.Illegal:
        return this.fail(pos, this.scanner.err);
    }
    return this.fail(pos, 'expected field or quoted');
  }

  private operator(): Operator {
    const { pos, tok, text } = this.scanner.scan();
    switch (tok) {
      case Tok.Operator:
        if (text === '==' || text === '!=' || text === '~=') return text;
        return this.fail(pos, `unsupported operator ${JSON.stringify(text)}`);
      case Tok.Illegal:
        return this.fail(pos, this.scanner.err);
    }
    return this.fail(pos, 'expected an operator ("=="|"!="|"~=")');
  }

  private value(allowAltQuotes: boolean): Unquoted & { pos: number } {
    const { pos, tok, text } = this.scanner.scan();
    switch (tok) {
      case Tok.Value:
      case Tok.Field:
        return { pos, value: text, wellFormed: true };
      case Tok.Quoted:
        return { pos, ...this.unquote(pos, text, allowAltQuotes) };
      case Tok.Illegal:
        return this.fail(pos, this.scanner.err);
    }
    return this.fail(pos, 'expected value or quoted');
  }

  private unquote(pos: number, text: string, allowAltQuotes: boolean): Unquoted {
    if (!allowAltQuotes && text[0] !== '"') this.fail(pos, 'invalid quote encountered');
    try {
      return unquote(text);
    } catch (err) {
      if (!(err instanceof QuoteSyntaxError)) throw err;
      return this.fail(pos, `unquoting failed: ${err.message}`);
    }
  }

  /** Throws containerd's parse error, pointing at `pos` in the input. */
  private fail(pos: number, reason: string): never {
    const input = this.input;
    let where: string;
    if (pos < input.length) {
      const width = input.codePointAt(pos)! > 0xffff ? 2 : 1;
      where = `${input.slice(0, pos)} >|${input.slice(pos, pos + width)}|< ${input.slice(pos + width)}`;
    } else {
      where = input;
    }
    throw new BerthError('InvalidArgument', `filters: parse error: [${where}]: ${reason}`);
  }
}
