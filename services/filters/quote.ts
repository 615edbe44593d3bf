// Decoding of quoted literals: Go string-literal escapes, with `"`, `/` or `|` as the delimiter.
//
// Go strings are bytes, so `\xff` or `\377` may produce bytes that are not UTF-8. We build the
// bytes the same way and decode them; when they are not valid UTF-8 the result is flagged, so
// that callers can treat the literal as something no (always valid) JS string can equal.

export class QuoteSyntaxError extends Error {
  constructor() {
    super('quote syntax error');
  }
}

export interface Unquoted {
  value: string;
  /** false when escapes produced bytes that are not valid UTF-8 */
  wellFormed: boolean;
}

const DELIMITERS = new Set(['"', '/', '|']);

export function unquote(literal: string): Unquoted {
  const n = literal.length;
  if (n < 2) throw new QuoteSyntaxError();
  const quote = literal[0];
  if (!DELIMITERS.has(quote) || literal[n - 1] !== quote) throw new QuoteSyntaxError();
  const body = literal.slice(1, n - 1);
  if (body.includes('\n')) throw new QuoteSyntaxError();
  if (!body.includes('\\')) {
    if (body.includes(quote)) throw new QuoteSyntaxError();
    return { value: body, wellFormed: true };
  }

  const bytes: number[] = [];
  const pushCodePoint = (cp: number) => {
    for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b);
  };
  let i = 0;
  while (i < body.length) {
    const cp = body.codePointAt(i)!;
    if (String.fromCodePoint(cp) === quote) throw new QuoteSyntaxError();
    if (cp !== 0x5c) {
      pushCodePoint(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    if (i + 1 >= body.length) throw new QuoteSyntaxError();
    const c = body[i + 1];
    i += 2;
    switch (c) {
      case 'a': bytes.push(0x07); break;
      case 'b': bytes.push(0x08); break;
      case 'f': bytes.push(0x0c); break;
      case 'n': bytes.push(0x0a); break;
      case 'r': bytes.push(0x0d); break;
      case 't': bytes.push(0x09); break;
      case 'v': bytes.push(0x0b); break;
      case '\\': bytes.push(0x5c); break;
      case 'x':
      case 'u':
      case 'U': {
        const width = c === 'x' ? 2 : c === 'u' ? 4 : 8;
        const digits = body.slice(i, i + width);
        if (digits.length < width || !/^[0-9a-fA-F]+$/.test(digits)) throw new QuoteSyntaxError();
        i += width;
        const v = parseInt(digits, 16);
        if (c === 'x') {
          bytes.push(v); // a raw byte, possibly not UTF-8
        } else {
          if (v > 0x10ffff) throw new QuoteSyntaxError();
          // Surrogate halves encode as U+FFFD, as Go's utf8.EncodeRune does.
          pushCodePoint(v >= 0xd800 && v <= 0xdfff ? 0xfffd : v);
        }
        break;
      }
      case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
        const digits = body.slice(i - 1, i + 2);
        if (!/^[0-7]{3}$/.test(digits)) throw new QuoteSyntaxError();
        i += 2;
        const v = parseInt(digits, 8);
        if (v > 255) throw new QuoteSyntaxError();
        bytes.push(v);
        break;
      }
      case '"':
      case '/':
      case '|':
        if (c !== quote) throw new QuoteSyntaxError();
        bytes.push(c.charCodeAt(0));
        break;
      default:
        throw new QuoteSyntaxError();
    }
  }
  const buf = Buffer.from(bytes);
  return { value: buf.toString('utf8'), wellFormed: isWellFormedUtf8(buf) };
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true });

function isWellFormedUtf8(buf: Uint8Array): boolean {
  try {
    strictDecoder.decode(buf);
    return true;
  } catch {
    return false;
  }
}
