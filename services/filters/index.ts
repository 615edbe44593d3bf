// Filter expressions for List and Subscribe calls, with containerd's syntax and semantics:
//
//   name==foo,labels."io.example/x"!=bar,image~=^docker\.io/
//
// Selectors joined by commas must all match; the several filter strings of a request are
// alternatives. A selector without an operator tests that the field is present.

export { type Adaptor, objectAdaptor } from './adaptor';
export { type Filter, Always, parse, parseAll } from './parser';
