// Filter expressions: containerd's filters package tests (filter_test.go, scanner_test.go),
// ported, plus regexp translation, quoting, parseAll and objectAdaptor.

import { BerthError } from '../../services/errdefs';
import { Always, objectAdaptor, parse, parseAll, type Adaptor, type Filter } from '../../services/filters';
import { unquote } from '../../services/filters/quote';
import { compileRegexp, foldOrbit } from '../../services/filters/regexp';
import { Scanner, Tok } from '../../services/filters/scanner';

function parseError(expr: string): BerthError {
  try {
    parse(expr);
  } catch (err) {
    expect(err).toBeInstanceOf(BerthError);
    return err as BerthError;
  }
  throw new Error(`parse(${JSON.stringify(expr)}) did not fail`);
}

function expectParseError(expr: string, message: string): void {
  const err = parseError(expr);
  expect(err.kind).toBe('InvalidArgument');
  expect(err.message).toBe(`${message}: invalid argument`);
}

/** An adaptor over a flat map of field paths (joined with dots) to values. */
function fieldsAdaptor(fields: Record<string, string>): Adaptor {
  return {
    field: (path) => {
      const key = path.join('.');
      return Object.prototype.hasOwnProperty.call(fields, key) ? fields[key] : undefined;
    },
  };
}

describe('filters: containerd TestFilters', () => {
  interface Entry {
    name: string;
    other?: string;
    labels?: Record<string, string>;
  }
  const corpus: Entry[] = [
    { name: 'foo', labels: { foo: 'true' } },
    { name: 'bar' },
    { name: 'foo', labels: { foo: 'present', 'more complex label': 'present' } },
    { name: 'bar', labels: { bar: 'true' } },
    { name: 'fooer', labels: { 'more complex label with \\ and "': 'present' } },
    { name: 'fooer', labels: { 'more complex label with \\ and ".post': 'present' } },
    { name: 'baz', other: 'too complex, yo' },
    { name: 'bazo', other: 'abc' },
    { name: 'compound', labels: { foo: 'omg_asdf.asdf-qwer' } },
  ];

  // The adaptor of containerd's test, written the same way.
  const adapt = (o: Entry): Adaptor => ({
    field(path) {
      switch (path[0]) {
        case 'name':
          return o.name || undefined;
        case 'other':
          return o.other || undefined;
        case 'labels': {
          const key = path.slice(1).join('.');
          return o.labels && Object.prototype.hasOwnProperty.call(o.labels, key) ? o.labels[key] : undefined;
        }
      }
      return undefined;
    },
  });

  const select = (f: Filter) => corpus.filter((e) => f.match(adapt(e)));

  const cases: { name: string; input: string; expected?: number[]; err?: string }[] = [
    { name: 'Empty', input: '', expected: [0, 1, 2, 3, 4, 5, 6, 7, 8] },
    { name: 'Present', input: 'name', expected: [0, 1, 2, 3, 4, 5, 6, 7, 8] },
    { name: 'LabelPresent', input: 'labels.foo', expected: [0, 2, 8] },
    { name: 'NameAndLabelPresent', input: 'labels.foo,name', expected: [0, 2, 8] },
    { name: 'LabelValue', input: 'labels.foo==true', expected: [0] },
    { name: 'LabelValuePunctuated', input: 'labels.foo==omg_asdf.asdf-qwer', expected: [8] },
    {
      name: 'LabelValueNoAltQuoting',
      input: 'labels.|foo|==omg_asdf.asdf-qwer',
      err: 'filters: parse error: [labels. >|||< foo|==omg_asdf.asdf-qwer]: invalid quote encountered',
    },
    { name: 'Name', input: 'name==bar', expected: [1, 3] },
    { name: 'NameNotEqual', input: 'name!=bar', expected: [0, 2, 4, 5, 6, 7, 8] },
    { name: 'NameAndLabelPresent', input: 'name==bar,labels.bar', expected: [3] },
    { name: 'QuotedValue', input: 'other=="too complex, yo"', expected: [6] },
    { name: 'RegexpValue', input: 'other~=[abc]+,name!=foo', expected: [6, 7] },
    { name: 'RegexpQuotedValue', input: 'other~=/[abc]+/,name!=foo', expected: [6, 7] },
    { name: 'RegexpQuotedValue', input: 'other~=/[abc]{1,2}/,name!=foo', expected: [6, 7] },
    // valid syntax, but matches nothing
    { name: 'RegexpQuotedValueGarbage', input: 'other~=/[abc]{0,1}"\\//,name!=foo', expected: [] },
    { name: 'NameAndLabelValue', input: 'name==bar,labels.bar==true', expected: [3] },
    { name: 'NameAndLabelValueNoMatch', input: 'name==bar,labels.bar==wrong', expected: [] },
    { name: 'LabelQuotedFieldPathPresent', input: 'name==foo,labels."more complex label"', expected: [2] },
    {
      name: 'LabelQuotedFieldPathPresentWithQuoted',
      input: String.raw`labels."more complex label with \\ and \""==present`,
      expected: [4],
    },
    {
      name: 'LabelQuotedFieldPathPresentWithQuotedEmbed',
      input: String.raw`labels."more complex label with \\ and \"".post==present`,
      expected: [5],
    },
    {
      name: 'LabelQuotedFieldPathPresentWithQuotedEmbedInvalid',
      input: String.raw`labels.?"more complex label with \\ and \"".post==present`,
      err: String.raw`filters: parse error: [labels. >|?|< "more complex label with \\ and \"".post==present]: expected field or quoted`,
    },
    { name: 'TrailingComma', input: 'name==foo,', err: 'filters: parse error: [name==foo,]: expected field or quoted' },
    { name: 'TrailingFieldSeparator', input: 'labels.', err: 'filters: parse error: [labels.]: expected field or quoted' },
    {
      name: 'MissingValue',
      input: 'image~=,id?=?fbaq',
      err: 'filters: parse error: [image~= >|,|< id?=?fbaq]: expected value or quoted',
    },
    {
      name: 'FieldQuotedLiteralNotTerminated',
      input: 'labels.ns/key==value',
      err: 'filters: parse error: [labels.ns >|/|< key==value]: quoted literal not terminated',
    },
    {
      name: 'ValueQuotedLiteralNotTerminated',
      input: 'labels.key==/value',
      err: 'filters: parse error: [labels.key== >|/|< value]: quoted literal not terminated',
    },
  ];

  test.each(cases)('$name: $input', ({ input, expected, err }) => {
    if (err !== undefined) {
      expectParseError(input, err);
      return;
    }
    expect(select(parse(input))).toEqual(expected!.map((i) => corpus[i]));
  });
});

describe('filters: containerd TestScanner', () => {
  interface Expected {
    pos: number;
    tok: number;
    text?: string;
    err?: string;
  }

  function tokens(input: string): Expected[] {
    const sc = new Scanner(input);
    const out: Expected[] = [];
    for (let i = 0; i < 100; i++) {
      const { pos, tok, text } = sc.scan();
      const t: Expected = { pos, tok };
      if (text) t.text = text;
      if (tok === Tok.Illegal) t.err = sc.err;
      out.push(t);
      if (tok === Tok.EOF) {
        expect(sc.scan().tok).toBe(Tok.EOF); // all input consumed
        return out;
      }
    }
    throw new Error('scanner did not reach EOF');
  }

  const { Field, Operator, Value, Separator, Quoted, Illegal, EOF } = Tok;
  const cases: { name: string; input: string; expected: Expected[] }[] = [
    {
      name: 'Field',
      input: 'name',
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: EOF },
      ],
    },
    {
      name: 'SelectorsWithOperators',
      input: 'name==value,foo!=bar',
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: Operator, text: '==' },
        { pos: 6, tok: Value, text: 'value' },
        { pos: 11, tok: Separator, text: ',' },
        { pos: 12, tok: Field, text: 'foo' },
        { pos: 15, tok: Operator, text: '!=' },
        { pos: 17, tok: Value, text: 'bar' },
        { pos: 20, tok: EOF },
      ],
    },
    {
      name: 'SelectorsWithFieldPaths',
      input: 'name==value,labels.foo=value,other.bar~=match',
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: Operator, text: '==' },
        { pos: 6, tok: Value, text: 'value' },
        { pos: 11, tok: Separator, text: ',' },
        { pos: 12, tok: Field, text: 'labels' },
        { pos: 18, tok: Separator, text: '.' },
        { pos: 19, tok: Field, text: 'foo' },
        { pos: 22, tok: Operator, text: '=' },
        { pos: 23, tok: Value, text: 'value' },
        { pos: 28, tok: Separator, text: ',' },
        { pos: 29, tok: Field, text: 'other' },
        { pos: 34, tok: Separator, text: '.' },
        { pos: 35, tok: Field, text: 'bar' },
        { pos: 38, tok: Operator, text: '~=' },
        { pos: 40, tok: Value, text: 'match' },
        { pos: 45, tok: EOF },
      ],
    },
    {
      name: 'RegexpValue',
      input: 'name~=[abc]+,foo=test',
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: Operator, text: '~=' },
        { pos: 6, tok: Value, text: '[abc]+' },
        { pos: 12, tok: Separator, text: ',' },
        { pos: 13, tok: Field, text: 'foo' },
        { pos: 16, tok: Operator, text: '=' },
        { pos: 17, tok: Value, text: 'test' },
        { pos: 21, tok: EOF },
      ],
    },
    {
      name: 'RegexpEscapedValue',
      input: String.raw`name~=[abc]\+,foo=test`,
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: Operator, text: '~=' },
        { pos: 6, tok: Value, text: '[abc]\\+' },
        { pos: 13, tok: Separator, text: ',' },
        { pos: 14, tok: Field, text: 'foo' },
        { pos: 17, tok: Operator, text: '=' },
        { pos: 18, tok: Value, text: 'test' },
        { pos: 22, tok: EOF },
      ],
    },
    {
      name: 'RegexpQuotedValue',
      input: 'name~=/[abc]{0,2}/,foo=test',
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: Operator, text: '~=' },
        { pos: 6, tok: Quoted, text: '/[abc]{0,2}/' },
        { pos: 18, tok: Separator, text: ',' },
        { pos: 19, tok: Field, text: 'foo' },
        { pos: 22, tok: Operator, text: '=' },
        { pos: 23, tok: Value, text: 'test' },
        { pos: 27, tok: EOF },
      ],
    },
    // Positions are string indices, not UTF-8 byte offsets: 牛 counts 1 here (3 in Go).
    {
      name: 'Cowsay',
      input: 'name~=牛,labels.moo=true',
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: Operator, text: '~=' },
        { pos: 6, tok: Value, text: '牛' },
        { pos: 7, tok: Separator, text: ',' },
        { pos: 8, tok: Field, text: 'labels' },
        { pos: 14, tok: Separator, text: '.' },
        { pos: 15, tok: Field, text: 'moo' },
        { pos: 18, tok: Operator, text: '=' },
        { pos: 19, tok: Value, text: 'true' },
        { pos: 23, tok: EOF },
      ],
    },
    {
      name: 'CowsayRegexpQuoted',
      input: 'name~=|牛|,labels.moo=true',
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: Operator, text: '~=' },
        { pos: 6, tok: Quoted, text: '|牛|' },
        { pos: 9, tok: Separator, text: ',' },
        { pos: 10, tok: Field, text: 'labels' },
        { pos: 16, tok: Separator, text: '.' },
        { pos: 17, tok: Field, text: 'moo' },
        { pos: 20, tok: Operator, text: '=' },
        { pos: 21, tok: Value, text: 'true' },
        { pos: 25, tok: EOF },
      ],
    },
    {
      name: 'Escapes',
      input: String.raw`name~="asdf\n\tfooo"`,
      expected: [
        { pos: 0, tok: Field, text: 'name' },
        { pos: 4, tok: Operator, text: '~=' },
        { pos: 6, tok: Quoted, text: '"asdf\\n\\tfooo"' },
        { pos: 20, tok: EOF },
      ],
    },
    {
      name: 'NullInput',
      input: 'foo\x00bar',
      expected: [
        { pos: 0, tok: Field, text: 'foo' },
        { pos: 3, tok: Illegal, err: 'unexpected null' },
        { pos: 4, tok: Field, text: 'bar' },
        { pos: 7, tok: EOF },
      ],
    },
    {
      name: 'SpacesChomped',
      input: 'foo = bar    ',
      expected: [
        { pos: 0, tok: Field, text: 'foo' },
        { pos: 4, tok: Operator, text: '=' },
        { pos: 6, tok: Value, text: 'bar' },
        { pos: 13, tok: EOF },
      ],
    },
    {
      name: 'ValuesPunctauted',
      input: 'compound.labels==punctuated_value.foo-bar',
      expected: [
        { pos: 0, tok: Field, text: 'compound' },
        { pos: 8, tok: Separator, text: '.' },
        { pos: 9, tok: Field, text: 'labels' },
        { pos: 15, tok: Operator, text: '==' },
        { pos: 17, tok: Value, text: 'punctuated_value.foo-bar' },
        { pos: 41, tok: EOF },
      ],
    },
    {
      name: 'PartialInput',
      input: 'interrupted=',
      expected: [
        { pos: 0, tok: Field, text: 'interrupted' },
        { pos: 11, tok: Operator, text: '=' },
        { pos: 12, tok: EOF },
      ],
    },
    {
      name: 'DoubleValue',
      input: 'doublevalue=value value',
      expected: [
        { pos: 0, tok: Field, text: 'doublevalue' },
        { pos: 11, tok: Operator, text: '=' },
        { pos: 12, tok: Value, text: 'value' },
        { pos: 18, tok: Field, text: 'value' },
        { pos: 23, tok: EOF },
      ],
    },
    {
      name: 'LeadingWithQuoted',
      input: '"leading quote".postquote==value',
      expected: [
        { pos: 0, tok: Quoted, text: '"leading quote"' },
        { pos: 15, tok: Separator, text: '.' },
        { pos: 16, tok: Field, text: 'postquote' },
        { pos: 25, tok: Operator, text: '==' },
        { pos: 27, tok: Value, text: 'value' },
        { pos: 32, tok: EOF },
      ],
    },
    {
      name: 'MissingValue',
      input: 'input==,id!=ff',
      expected: [
        { pos: 0, tok: Field, text: 'input' },
        { pos: 5, tok: Operator, text: '==' },
        { pos: 7, tok: Separator, text: ',' },
        { pos: 8, tok: Field, text: 'id' },
        { pos: 10, tok: Operator, text: '!=' },
        { pos: 12, tok: Value, text: 'ff' },
        { pos: 14, tok: EOF },
      ],
    },
    {
      name: 'QuotedRegexp',
      input: 'input~=/foo\\/bar/,id!=ff',
      expected: [
        { pos: 0, tok: Field, text: 'input' },
        { pos: 5, tok: Operator, text: '~=' },
        { pos: 7, tok: Quoted, text: '/foo\\/bar/' },
        { pos: 17, tok: Separator, text: ',' },
        { pos: 18, tok: Field, text: 'id' },
        { pos: 20, tok: Operator, text: '!=' },
        { pos: 22, tok: Value, text: 'ff' },
        { pos: 24, tok: EOF },
      ],
    },
    {
      name: 'QuotedRegexpAlt',
      input: 'input~=|foo/bar|,id!=ff',
      expected: [
        { pos: 0, tok: Field, text: 'input' },
        { pos: 5, tok: Operator, text: '~=' },
        { pos: 7, tok: Quoted, text: '|foo/bar|' },
        { pos: 16, tok: Separator, text: ',' },
        { pos: 17, tok: Field, text: 'id' },
        { pos: 19, tok: Operator, text: '!=' },
        { pos: 21, tok: Value, text: 'ff' },
        { pos: 23, tok: EOF },
      ],
    },
    {
      name: 'IllegalQuoted',
      input: 'labels.containerd.io/key==value',
      expected: [
        { pos: 0, tok: Field, text: 'labels' },
        { pos: 6, tok: Separator, text: '.' },
        { pos: 7, tok: Field, text: 'containerd' },
        { pos: 17, tok: Separator, text: '.' },
        { pos: 18, tok: Field, text: 'io' },
        { pos: 20, tok: Illegal, text: '/key==value', err: 'quoted literal not terminated' },
        { pos: 31, tok: EOF },
      ],
    },
    {
      name: 'IllegalQuotedWithNewLine',
      input: 'labels."containerd.io\nkey"==value',
      expected: [
        { pos: 0, tok: Field, text: 'labels' },
        { pos: 6, tok: Separator, text: '.' },
        { pos: 7, tok: Illegal, text: '"containerd.io\n', err: 'quoted literal not terminated' },
        { pos: 22, tok: Field, text: 'key' },
        { pos: 25, tok: Illegal, text: '"==value', err: 'quoted literal not terminated' },
        { pos: 33, tok: EOF },
      ],
    },
    {
      name: 'IllegalEscapeSequence',
      input: String.raw`labels."\g"`,
      expected: [
        { pos: 0, tok: Field, text: 'labels' },
        { pos: 6, tok: Separator, text: '.' },
        { pos: 7, tok: Illegal, text: String.raw`"\g"`, err: 'illegal escape sequence' },
        { pos: 11, tok: EOF },
      ],
    },
    {
      name: 'IllegalNumericEscapeSequence',
      input: String.raw`labels."\xaz"`,
      expected: [
        { pos: 0, tok: Field, text: 'labels' },
        { pos: 6, tok: Separator, text: '.' },
        { pos: 7, tok: Illegal, text: String.raw`"\xaz"`, err: 'illegal numeric escape sequence' },
        { pos: 13, tok: EOF },
      ],
    },
    // Beyond containerd's cases.
    {
      name: 'AstralCharacters',
      input: 'a==😀x,b',
      expected: [
        { pos: 0, tok: Field, text: 'a' },
        { pos: 1, tok: Operator, text: '==' },
        { pos: 3, tok: Value, text: '😀x' },
        { pos: 6, tok: Separator, text: ',' },
        { pos: 7, tok: Field, text: 'b' },
        { pos: 8, tok: EOF },
      ],
    },
    {
      name: 'ReplacementCharacter',
      input: 'a\ufffdb',
      expected: [
        { pos: 0, tok: Field, text: 'a' },
        { pos: 1, tok: Illegal, err: 'rune error' },
        { pos: 2, tok: Field, text: 'b' },
        { pos: 3, tok: EOF },
      ],
    },
    {
      name: 'NumericEscapes',
      input: String.raw`"\101\x41\u0041\U00000041\a\b\f\n\r\t\v\\\""`,
      expected: [
        { pos: 0, tok: Quoted, text: String.raw`"\101\x41\u0041\U00000041\a\b\f\n\r\t\v\\\""` },
        { pos: 44, tok: EOF },
      ],
    },
    {
      name: 'UnterminatedAfterEscape',
      input: String.raw`"abc\"`,
      expected: [
        { pos: 0, tok: Illegal, text: String.raw`"abc\"`, err: 'quoted literal not terminated' },
        { pos: 6, tok: EOF },
      ],
    },
    {
      name: 'BareCharacters',
      input: 'a?b',
      expected: [
        { pos: 0, tok: Field, text: 'a' },
        { pos: 1, tok: '?'.codePointAt(0)! },
        { pos: 2, tok: Field, text: 'b' },
        { pos: 3, tok: EOF },
      ],
    },
  ];

  test.each(cases)('$name', ({ input, expected }) => {
    expect(tokens(input)).toEqual(expected);
  });
});

describe('filters: grammar and matching', () => {
  const obj = fieldsAdaptor({
    name: 'web-1',
    image: 'docker.io/library/nginx:latest',
    'labels.a.b': 'dotted',
    'labels.io.containerd/x': 'y',
    'labels.empty': '',
    'runtime.name': 'io.containerd.runc.v2',
  });
  const m = (expr: string) => parse(expr).match(obj);

  test('presence', () => {
    expect(m('name')).toBe(true);
    expect(m('missing')).toBe(false);
    expect(m('labels.empty')).toBe(true);
    expect(m('labels."a.b"')).toBe(true);
    expect(m('labels.a.b')).toBe(true); // the adaptor joins with dots either way
    expect(m('labels.a')).toBe(false);
  });

  test('quoted field paths', () => {
    expect(m('labels."io.containerd/x"==y')).toBe(true);
    expect(m('"labels"."a.b"==dotted')).toBe(true);
    expect(m('runtime."name"==io.containerd.runc.v2')).toBe(true);
  });

  test('fields may start with digits and hold underscores', () => {
    const a = fieldsAdaptor({ '0x_1': 'v' });
    expect(parse('0x_1==v').match(a)).toBe(true);
  });

  test('equality, inequality and absent fields', () => {
    expect(m('name==web-1')).toBe(true);
    expect(m('name==web-2')).toBe(false);
    expect(m('name!=web-2')).toBe(true);
    expect(m('name!=web-1')).toBe(false);
    // An absent field compares as "": != matches it, == "" does not.
    expect(m('missing!=x')).toBe(true);
    expect(m('missing!=""')).toBe(false);
    expect(m('missing==""')).toBe(false);
    expect(m('labels.empty==""')).toBe(true);
  });

  test('regexp on an absent field matches against the empty string', () => {
    expect(m('missing~=^$')).toBe(true);
    expect(m('missing~=x')).toBe(false);
    expect(m('missing~="."')).toBe(false);
    expect(m('name~="."')).toBe(true);
  });

  test('values: bare punctuation, quoted with Go escapes', () => {
    expect(m('image==docker.io/library/nginx:latest')).toBe(true);
    expect(m('image=="docker.io/library/nginx:latest"')).toBe(true);
    expect(m(String.raw`name=="web\x2d1"`)).toBe(true);
    expect(m(String.raw`name=="\u0077eb-1"`)).toBe(true);
    expect(m(String.raw`name=="\167eb-1"`)).toBe(true);
    expect(m('name==web-1=x')).toBe(false); // = is part of the bare value
  });

  test('alternative quotes only after ~=', () => {
    expect(m('image~=/^docker\\\\.io\\//')).toBe(true); // /…/ takes Go string escapes: \\. is \.
    expect(m('image~=^docker\\.io/')).toBe(true);
    expectParseError('image~=/a\\.b/', 'filters: parse error: [image~= >|/|< a\\.b/]: illegal escape sequence');
    expect(m('image~=|nginx|')).toBe(true);
    expect(m('image~=|a\\|nginx|')).toBe(true); // \| inside |…| is a literal bar, i.e. alternation
    expectParseError('name==/web/', 'filters: parse error: [name== >|/|< web/]: invalid quote encountered');
    expectParseError('name!=|web|', 'filters: parse error: [name!= >|||< web|]: invalid quote encountered');
  });

  test('selectors are ANDed', () => {
    expect(m('name==web-1,image~=nginx')).toBe(true);
    expect(m('name==web-1,image~=redis')).toBe(false);
    expect(m('name,labels.empty,labels."a.b"==dotted')).toBe(true);
  });

  test('white space before tokens is skipped', () => {
    expect(m(' name == web-1')).toBe(true);
    expect(m('name ==web-1, image~=nginx')).toBe(true);
    expect(m('name== "web-1"')).toBe(true);
  });

  test('white space after a value or field is an error (as in containerd)', () => {
    expectParseError('name==web-1 ', 'filters: parse error: [name==web-1 >| |< ]: unexpected input:  ');
    expectParseError('name ,image', 'filters: parse error: [name  >|,|< image]: expected an operator ("=="|"!="|"~=")');
  });

  test('parse errors', () => {
    expectParseError('name=foo', 'filters: parse error: [name >|=|< foo]: unsupported operator "="');
    expectParseError('name===foo', 'filters: parse error: [name >|=|< ==foo]: unsupported operator "==="');
    expectParseError('name=~foo', 'filters: parse error: [name >|=|< ~foo]: unsupported operator "=~"');
    expectParseError('name==', 'filters: parse error: [name==]: expected value or quoted');
    expectParseError('name==!x', 'filters: parse error: [name >|=|< =!x]: unsupported operator "==!"');
    // A bare value cannot start with a separator; quote it.
    expectParseError('name~=.*', 'filters: parse error: [name~= >|.|< *]: expected value or quoted');
    expectParseError(',', 'filters: parse error: [ >|,|< ]: expected field or quoted');
    expectParseError(' ', 'filters: parse error: [ ]: expected field or quoted');
    expectParseError('name==a b', 'filters: parse error: [name==a >| |< b]: unexpected input:  ');
    expectParseError('name=="a"b', 'filters: parse error: [name=="a" >|b|< ]: unexpected input: b');
    expectParseError('name.', 'filters: parse error: [name.]: expected field or quoted');
    expectParseError('name..x', 'filters: parse error: [name. >|.|< x]: expected field or quoted');
    expectParseError('name"x"', 'filters: parse error: [name >|"|< x"]: expected an operator ("=="|"!="|"~=")');
    expectParseError('labels."\\g"', 'filters: parse error: [labels. >|"|< \\g"]: illegal escape sequence');
    expectParseError('labels."\\xaz"', 'filters: parse error: [labels. >|"|< \\xaz"]: illegal numeric escape sequence');
    expectParseError('labels."a\nb"==c', 'filters: parse error: [labels. >|"|< a\nb"==c]: quoted literal not terminated');
    expectParseError('name==foo\x00', 'filters: parse error: [name==foo >|\x00|< ]: unexpected input: \ufffd');
    expectParseError('na\x00me', 'filters: parse error: [na >|\x00|< me]: unexpected null');
    // Accepted by the scanner, rejected by Go's unquote: octal above 255, \U beyond Unicode.
    expectParseError('name=="\\400"', 'filters: parse error: [name== >|"|< \\400"]: unquoting failed: quote syntax error');
    expectParseError(
      'name=="\\U00110000"',
      'filters: parse error: [name== >|"|< \\U00110000"]: unquoting failed: quote syntax error',
    );
  });

  test('the error marker spans a whole astral character', () => {
    expectParseError('a==x,😀', 'filters: parse error: [a==x, >|😀|< ]: expected field or quoted');
  });

  test('the first scanner error sticks, as in containerd', () => {
    // The bad escape is reported although the literal is also unterminated.
    expectParseError('a=="\\q\nb"', 'filters: parse error: [a== >|"|< \\q\nb"]: illegal escape sequence');
  });

  test('regexp errors are parse errors pointing at the value', () => {
    expectParseError('name~=[', 'filters: parse error: [name~= >|[|< ]: error parsing regexp: missing closing ]: `[`');
    expectParseError(
      'name~=/(a/',
      'filters: parse error: [name~= >|/|< (a/]: error parsing regexp: missing closing ): `(a`',
    );
    expectParseError(
      'a==b,name~=x**',
      'filters: parse error: [a==b,name~= >|x|< **]: error parsing regexp: invalid nested repetition operator: `**`',
    );
  });

  test('errors are InvalidArgument BerthErrors', () => {
    const err = parseError('name==');
    expect(err.kind).toBe('InvalidArgument');
    expect(err.code).toBe(3);
    expect(err.message.endsWith(': invalid argument')).toBe(true);
    expect(err.message.endsWith(': invalid argument: invalid argument')).toBe(false);
  });

  test('values that are not UTF-8 (from \\x or octal escapes)', () => {
    const a = fieldsAdaptor({ name: '\ufffd', 'labels.\ufffd': 'v' });
    // No JS string equals the bytes "\xff", not even U+FFFD.
    expect(parse('name=="\\xff"').match(a)).toBe(false);
    expect(parse('name!="\\xff"').match(a)).toBe(true);
    expect(parse('labels."\\xff"').match(a)).toBe(false);
    expect(parse('labels."\\xff"!=v').match(a)).toBe(true);
    // Valid UTF-8 spelled as bytes is fine.
    expect(parse('name=="\\xe7\\x89\\x9b"').match(fieldsAdaptor({ name: '牛' }))).toBe(true);
    expect(parse('name=="\\347\\211\\233"').match(fieldsAdaptor({ name: '牛' }))).toBe(true);
    expectParseError('name~="\\xff"', 'filters: parse error: [name~= >|"|< \\xff"]: error parsing regexp: invalid UTF-8: `\ufffd`');
  });

  test('Always and the empty filter', () => {
    expect(parse('')).toBe(Always);
    expect(Always.match(fieldsAdaptor({}))).toBe(true);
  });
});

describe('filters: parseAll', () => {
  const a = fieldsAdaptor({ name: 'a' });
  const b = fieldsAdaptor({ name: 'b' });
  const c = fieldsAdaptor({ name: 'c' });

  test('no filters, or any empty filter, match everything', () => {
    expect(parseAll([])).toBe(Always);
    expect(parseAll([''])).toBe(Always);
    expect(parseAll(['', ''])).toBe(Always);
    expect(parseAll(['name==x', ''])).toBe(Always);
  });

  test('filters are alternatives', () => {
    const f = parseAll(['name==a', 'name==b']);
    expect(f.match(a)).toBe(true);
    expect(f.match(b)).toBe(true);
    expect(f.match(c)).toBe(false);
    expect(parseAll(['name==a']).match(b)).toBe(false);
  });

  test('alternatives of conjunctions', () => {
    const obj = fieldsAdaptor({ name: 'a', 'labels.x': '1' });
    expect(parseAll(['name==a,labels.x==2', 'name==b']).match(obj)).toBe(false);
    expect(parseAll(['name==a,labels.x==2', 'labels.x']).match(obj)).toBe(true);
  });

  test('one bad filter fails the whole list, even beside an empty one', () => {
    expect(() => parseAll(['', 'name=='])).toThrow(BerthError);
    try {
      parseAll(['name==a', 'name~=(']);
      throw new Error('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(BerthError);
      expect((err as BerthError).kind).toBe('InvalidArgument');
      expect((err as BerthError).message).toBe(
        'filters: parse error: [name~= >|(|< ]: error parsing regexp: missing closing ): `(`: invalid argument',
      );
    }
  });
});

describe('filters: quoted literals', () => {
  test.each([
    ['"abc"', 'abc'],
    ['""', ''],
    ['/a\\/b/', 'a/b'],
    ['|a\\|b|', 'a|b'],
    ['"a\\"b"', 'a"b'],
    ['"\\a\\b\\f\\n\\r\\t\\v\\\\"', '\x07\b\f\n\r\t\v\\'],
    ['"\\x41\\101\\u00e9\\U0001F600"', 'AAé😀'],
    ['"\\ud800"', '\ufffd'],
    ['/"/', '"'],
    ['"牛"', '牛'],
  ])('%s', (literal, value) => {
    expect(unquote(literal)).toEqual({ value, wellFormed: true });
  });

  test.each(['"', 'abc', '"abc/', '"a\nb"', '"\\/"', '"\\q"', '"\\x4"', '"\\12"', '"\\400"', '"\\U00110000"', '/a"\\"/'])(
    'rejects %s',
    (literal) => {
      expect(() => unquote(literal)).toThrow('quote syntax error');
    },
  );

  test('bytes that are not UTF-8 are flagged', () => {
    expect(unquote('"\\xff"').wellFormed).toBe(false);
    expect(unquote('"\\xed\\xa0\\x80"').wellFormed).toBe(false); // an encoded surrogate
    expect(unquote('"\\xc3\\xa9"')).toEqual({ value: 'é', wellFormed: true });
  });
});

describe('filters: Go regexp syntax', () => {
  const matches = (pattern: string, s: string) => compileRegexp(pattern).test(s);

  test.each<[string, string[], string[]]>([
    // basics and unanchored search
    ['abc', ['abc', 'xabcx'], ['ab', 'ABC']],
    ['^a.c$', ['abc', 'a-c'], ['a\nc', 'abcd']],
    ['a|b', ['a', 'b'], ['c']],
    ['a|', ['', 'x'], []],
    ['(ab)+', ['abab'], ['a']],
    ['(?P<name>x)(?<other>y)', ['xy'], ['x']],
    ['(?:ab){2}', ['abab'], ['ab']],
    ['a{2,3}', ['aa', 'aaa'], ['a']],
    ['^a{2,}$', ['aa', 'aaaa'], ['a']],
    ['^a{0}b$', ['b'], ['ab']],
    ['^a*?$', ['aaa'], ['b']],
    // literal braces and brackets
    ['a{', ['a{'], ['a']],
    ['a{,2}', ['a{,2}'], ['aa']],
    ['a{01}', ['a{01}'], ['a']],
    ['a}', ['a}'], ['a']],
    ['a]', ['a]'], ['a']],
    ['[]a]', [']', 'a'], ['b']],
    ['[^]a]', ['b'], [']', 'a']],
    ['[a-]', ['a', '-'], ['b']],
    ['[a-c-e]', ['b', '-', 'e'], ['d']],
    // escapes
    ['\\.', ['.'], ['a']],
    ['\\-\\/\\#\\ \\_\\~\\"', ['-/# _~"'], []],
    ['\\x41\\x{1F600}', ['A😀'], []],
    ['\\101\\0', ['A\0'], ['A']],
    ['\\a\\f\\t\\n\\r\\v', ['\x07\f\t\n\r\v'], []],
    ['\\Qa.b*\\E', ['a.b*'], ['axb']],
    ['\\Qa.b', ['a.b'], ['axb']],
    ['^\\Qab\\E*$', ['a', 'abbb'], ['abab']],
    ['\\Aab\\z', ['ab'], ['ab\n', 'xab']],
    // Perl and POSIX classes, with Go's ASCII meanings
    ['^\\d+$', ['0123'], ['١', 'a']],
    ['^\\s$', [' ', '\t', '\n', '\f', '\r'], ['\v', '\u00a0', '\u2003']],
    ['^\\S$', ['\v', 'a'], [' ']],
    ['^\\w+$', ['a_Z9'], ['é', '-']],
    ['^\\W$', ['é', '-'], ['a']],
    ['\\bfoo\\b', ['a foo b', 'foo'], ['foobar']],
    ['\\Boo', ['foo'], ['oo']],
    ['^[[:alpha:][:digit:]]+$', ['ab12'], ['a-b']],
    ['^[[:^alpha:]]$', ['1', 'é'], ['a']],
    ['^[[:word:]]$', ['_'], ['-']],
    ['^[[:space:]]$', ['\v'], ['a']],
    ['^[[:punct:]]+$', ['!/:@[`{~'], ['a']],
    ['^[\\d\\s]+$', ['1 2'], ['a']],
    ['^[^\\S]$', [' '], ['a']],
    ['^[\\W]$', ['-'], ['a']],
    // Unicode classes
    ['^\\pL+$', ['abcé牛'], ['1']],
    ['^\\p{Lu}$', ['A', 'É'], ['a']],
    ['^\\PL$', ['1'], ['a']],
    ['^\\p{^L}$', ['1'], ['a']],
    ['^\\p{Greek}+$', ['αβγ'], ['abc']],
    ['^[\\p{Han}\\d]+$', ['牛1'], ['a']],
    ['^[^\\p{Han}]$', ['a'], ['牛']],
    ['^\\p{Any}$', ['a', '😀'], []],
    ['^\\p{C}$', ['\x01'], ['a', '\u0378']],
    // flags
    ['(?i)abc', ['ABC', 'aBc'], ['abd']],
    ['(?i)k', ['K', 'k', '\u212a'], ['x']],
    ['(?i)[k-l]', ['K', 'L', '\u212a'], ['m']],
    ['(?i)[^k]', ['x'], ['K', 'k', '\u212a']],
    ['(?i)σ', ['Σ', 'ς', 'σ'], ['s']],
    ['(?i:a)b', ['ab', 'Ab'], ['aB', 'AB']],
    ['a(?i)b', ['aB', 'ab'], ['Ab']],
    ['(a(?i)b)c', ['aBc'], ['aBC']],
    ['(?i)a(?-i)b', ['Ab'], ['AB']],
    ['(?i:k)x', ['\u212ax', 'Kx'], ['KX']],
    ['(?i:[a-c])x', ['Bx'], ['BX']],
    ['(?i:\\w)x', ['\u017fx', 'Ax'], ['AX']],
    ['(?i:[^a])X', ['bX'], ['AX', 'aX']],
    ['(?i:\\W)X', ['-X'], ['\u017fX', 'sX']],
    ['(?i:\\d)X', ['1X'], ['1x']],
    ['(?i)\\pL\\d', ['a1'], ['aa']],
    // where JS's i flag would differ from Go: negated classes are folded before negation, and
    // \b stays ASCII
    ['(?i)^\\W$', ['-'], ['s', 'S', '\u017f', 'k', '\u212a']],
    ['(?i)^[^\\w]$', ['-'], ['\u017f']],
    ['(?i)^\\P{Lu}$', ['1', '-'], ['a', 'A']],
    ['(?i)^\\p{^Ll}$', ['1'], ['a', 'A']],
    ['(?i)^[^\\P{Lu}x]$', ['a', 'B'], ['x', 'X', '1']],
    ['(?i)^[\\P{Lu}x]$', ['1', 'x', 'X'], ['a', 'B']],
    ['(?i)\\bk', ['k', ' K'], ['\u017f\u212a', '\u212a\u212a']],
    ['(?i)^\\p{Greek}$', ['α', 'Ω', '\u00b5'], ['a']],
    ['^\\p{Greek}$', ['α'], ['\u00b5']],
    ['(?i:\\p{Greek})x', ['\u00b5x'], ['\u00b5X']],
    ['^[^\\P{C}\\P{Cc}]$', ['\x01'], ['\u200b', 'a']],
    ['^[\\P{C}]$', ['a', '\u0378'], ['\x01']],
    ['^\\P{Assigned}$', ['\u0378'], ['a']],
    ['^\\p{ASCII}+$', ['a~'], ['é']],
    ['(?m)^b$', ['a\nb\nc', 'b'], ['ab', 'a\nbc']],
    ['^b$', ['b'], ['a\nb']],
    ['(?s)a.b', ['a\nb'], ['ab']],
    ['(?s:.)(?-s:.)', ['\nx'], ['\n\n']],
    ['(?U)a+', ['a'], ['b']],
    ['(?im)^X$', ['a\nx'], ['ax']],
    // quantified assertions and repeats (Go accepts them)
    ['^*a', ['a'], ['b']],
    ['\\b+a', ['a'], []],
    ['x*(?i)*', ['', 'xx'], []],
    ['x*\\Q\\E*', [''], []],
    ['(?m)^*b', ['b'], []],
  ])('%s', (pattern, yes, no) => {
    for (const s of yes) expect([s, matches(pattern, s)]).toEqual([s, true]);
    for (const s of no) expect([s, matches(pattern, s)]).toEqual([s, false]);
  });

  test.each([
    ['a**', 'invalid nested repetition operator: `**`'],
    ['a*+', 'invalid nested repetition operator: `*+`'],
    ['a+?*', 'invalid nested repetition operator: `+?*`'],
    ['a{2}{3}', 'invalid nested repetition operator: `{2}{3}`'],
    ['*', 'missing argument to repetition operator: `*`'],
    ['(*)', 'missing argument to repetition operator: `*`'],
    ['a|*', 'missing argument to repetition operator: `*`'],
    ['(?i)+?', 'missing argument to repetition operator: `+?`'],
    ['a{1001}', 'invalid repeat count: `{1001}`'],
    ['a{2,1}', 'invalid repeat count: `{2,1}`'],
    ['a{100000000}', 'invalid repeat count: `{100000000}`'],
    ['(a{500}){3}', 'invalid repeat count: `{3}`'],
    ['((a{10}){10}){11}', 'invalid repeat count: `{11}`'],
    ['(', 'missing closing ): `(`'],
    ['(a(b)', 'missing closing ): `(a(b)`'],
    [')', 'unexpected ): `)`'],
    ['a)', 'unexpected ): `a)`'],
    ['[a', 'missing closing ]: `[a`'],
    ['x[]', 'missing closing ]: `[]`'],
    ['[z-a]', 'invalid character class range: `z-a`'],
    ['[[:foo:]]', 'invalid character class range: `[:foo:]`'],
    ['\\p{Foo}', 'invalid character class range: `\\p{Foo}`'],
    ['\\p{Cn}', 'invalid character class range: `\\p{Cn}`'],
    ['\\p{L', 'invalid character class range: `\\p{L`'],
    ['\\p', 'invalid character class range: `\\p`'],
    ['\\1', 'invalid escape sequence: `\\1`'],
    ['\\8', 'invalid escape sequence: `\\8`'],
    ['\\q', 'invalid escape sequence: `\\q`'],
    ['\\Z', 'invalid escape sequence: `\\Z`'],
    ['\\C', 'invalid escape sequence: `\\C`'],
    ['\\é', 'invalid escape sequence: `\\é`'],
    ['\\xZ1', 'invalid escape sequence: `\\xZ1`'],
    ['\\x{}', 'invalid escape sequence: `\\x{}`'],
    ['\\x{110000}', 'invalid escape sequence: `\\x{110000`'],
    ['[\\b]', 'invalid escape sequence: `\\b`'],
    ['[a-\\d]', 'invalid escape sequence: `\\d`'],
    ['a\\', 'trailing backslash at end of expression: ``'],
    ['(?=a)', 'invalid or unsupported Perl syntax: `(?=`'],
    ['(?!a)', 'invalid or unsupported Perl syntax: `(?!`'],
    ['(?<=a)', 'invalid named capture: `(?<=a)`'],
    ['(?<!a)>', 'invalid named capture: `(?<!a)>`'],
    ['(?P<>a)', 'invalid named capture: `(?P<>`'],
    ['(?P<a-b>x)', 'invalid named capture: `(?P<a-b>`'],
    ['(?P=a)', 'invalid or unsupported Perl syntax: `(?P`'],
    ['(?x)', 'invalid or unsupported Perl syntax: `(?x`'],
    ['(?i-)', 'invalid or unsupported Perl syntax: `(?i-)`'],
    ['(?--i)', 'invalid or unsupported Perl syntax: `(?--`'],
    ['(?i', 'invalid or unsupported Perl syntax: `(?i`'],
  ])('rejects %s', (pattern, message) => {
    expect(() => compileRegexp(pattern)).toThrow(`error parsing regexp: ${message}`);
  });

  test('case folding is spelled out, never left to the JS i flag', () => {
    expect(compileRegexp('(?i)abc').flags).toBe('u');
    expect(compileRegexp('(?i)abc').source).toBe('[Aa][Bb][Cc]');
  });

  test('case-folding orbits', () => {
    const orbit = (c: string) => [...foldOrbit(c.codePointAt(0)!)].map((x) => String.fromCodePoint(x)).sort();
    expect(orbit('k')).toEqual(['K', 'k', '\u212a'].sort());
    expect(orbit('ß')).toEqual(['ß', 'ẞ'].sort());
    expect(orbit('ı')).toEqual(['ı']);
    expect(orbit('1')).toEqual(['1']);
    expect(orbit('é')).toEqual(['É', 'é'].sort());
  });
});

describe('filters: objectAdaptor', () => {
  const a = objectAdaptor({
    id: 'c1',
    image: '',
    running: true,
    paused: false,
    pid: 42,
    tags: ['x'],
    spec: new Uint8Array([1]),
    gone: null,
    labels: { 'io.example/a': '1', 'a.b.c': 'dotted', empty: '', nested: { x: 'y' } as unknown as string },
    annotations: { 'org.opencontainers.image.ref.name': 'latest' },
    runtime: { name: 'io.containerd.runc.v2', options: { systemd: true }, blank: '' },
    extra: new Map([['k.1', 'v']]),
    none: {},
  });

  test('top-level strings: present when non-empty', () => {
    expect(a.field(['id'])).toBe('c1');
    expect(a.field(['image'])).toBeUndefined();
    expect(a.field(['missing'])).toBeUndefined();
    expect(a.field([])).toBeUndefined();
  });

  test('path segments after a string are ignored, as by containerd', () => {
    expect(a.field(['id', 'whatever'])).toBe('c1');
  });

  test('booleans are "true" or "false"', () => {
    expect(a.field(['running'])).toBe('true');
    expect(a.field(['paused'])).toBe('false');
  });

  test('numbers, arrays, bytes and null are not filterable', () => {
    expect(a.field(['pid'])).toBeUndefined();
    expect(a.field(['tags'])).toBeUndefined();
    expect(a.field(['tags', '0'])).toBeUndefined();
    expect(a.field(['spec'])).toBeUndefined();
    expect(a.field(['gone'])).toBeUndefined();
  });

  test('labels: keys joined with dots, empty values present', () => {
    expect(a.field(['labels', 'io.example/a'])).toBe('1');
    expect(a.field(['labels', 'a', 'b', 'c'])).toBe('dotted');
    expect(a.field(['labels', 'a.b.c'])).toBe('dotted');
    expect(a.field(['labels', 'empty'])).toBe('');
    expect(a.field(['labels', 'nope'])).toBeUndefined();
    expect(a.field(['labels'])).toBeUndefined();
    expect(a.field(['labels', 'nested'])).toBeUndefined();
    expect(a.field(['labels', 'nested', 'x'])).toBeUndefined();
    expect(a.field(['annotations', 'org', 'opencontainers', 'image', 'ref', 'name'])).toBe('latest');
    expect(a.field(['extra', 'k', '1'])).toBe('v');
  });

  test('nested objects by path', () => {
    expect(a.field(['runtime', 'name'])).toBe('io.containerd.runc.v2');
    expect(a.field(['runtime', 'options', 'systemd'])).toBe('true');
    expect(a.field(['runtime', 'blank'])).toBeUndefined();
    expect(a.field(['runtime'])).toBeUndefined();
    expect(a.field(['runtime', 'missing'])).toBeUndefined();
    expect(a.field(['none', 'x'])).toBeUndefined();
  });

  test('inherited properties are never fields', () => {
    expect(a.field(['constructor'])).toBeUndefined();
    expect(a.field(['toString'])).toBeUndefined();
    expect(a.field(['__proto__', 'x'])).toBeUndefined();
    expect(a.field(['labels', 'constructor'])).toBeUndefined();
    expect(a.field(['labels', 'hasOwnProperty'])).toBeUndefined();
    expect(objectAdaptor({ labels: {} }).field(['labels', 'toString'])).toBeUndefined();
  });

  test('used with parse', () => {
    const f = parseAll(['labels."io.example/a"==1,runtime.name~=runc', 'id==other']);
    expect(f.match(a)).toBe(true);
    expect(parse('image').match(a)).toBe(false);
    expect(parse('running==true,paused==false').match(a)).toBe(true);
    expect(parse('labels.empty,labels.empty==""').match(a)).toBe(true);
  });
});
