// Loads our wire definitions (the .proto files beside this module) into one protobufjs Root.
//
// The build step serialises the parsed Root to dist/proto/bundle.json so that berthd, the CLI and
// the shim skip the .proto parser at start-up; without the bundle (a tree being developed) the
// .proto files are parsed directly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

/** The folder holding the .proto sources (this file compiles to dist/proto/index.js). */
export const PROTO_DIR = fs.existsSync(path.join(__dirname, 'containerd'))
  ? __dirname
  : path.resolve(__dirname, '..', '..', 'proto');

export const BUNDLE_PATH = path.join(__dirname, 'bundle.json');

let cached: protobuf.Root | undefined;

// protobufjs' Node reader clamps a string field whose declared length runs past the end of the
// message instead of failing; grpc-go rejects such a message, and so do we (bytes() checks bounds).
protobuf.BufferReader.prototype.string = function readStringChecked(this: protobuf.BufferReader) {
  return (this.bytes() as Buffer).toString('utf8');
};

/** Every .proto file under PROTO_DIR, relative to it, in a stable order. */
export function protoFiles(dir = PROTO_DIR): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else if (entry.name.endsWith('.proto')) out.push(child);
    }
  };
  walk('');
  return out.sort();
}

/** Parses the .proto sources; imports resolve against PROTO_DIR, well-known types come with protobufjs. */
export function parseProtoFiles(dir = PROTO_DIR): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (target.startsWith('google/protobuf/')) return target; // protobufjs' bundled common types
    return path.isAbsolute(target) ? target : path.join(dir, target);
  };
  root.loadSync(protoFiles(dir).map((f) => path.join(dir, f)), { keepCase: true });
  root.resolveAll();
  return root;
}

/** The wire Root, loaded once per process. */
export function wire(): protobuf.Root {
  if (cached) return cached;
  if (fs.existsSync(BUNDLE_PATH)) {
    cached = protobuf.Root.fromJSON(JSON.parse(fs.readFileSync(BUNDLE_PATH, 'utf8')));
    cached.resolveAll();
  } else {
    cached = parseProtoFiles();
  }
  return cached;
}

// lookupType walks the namespace tree on every call; codecs ask for the same few types per call
const messageTypes = new Map<string, protobuf.Type>();

export function messageType(fullName: string): protobuf.Type {
  let type = messageTypes.get(fullName);
  if (!type) {
    type = wire().lookupType(fullName);
    messageTypes.set(fullName, type);
  }
  return type;
}

export function serviceType(fullName: string): protobuf.Service {
  return wire().lookupService(fullName);
}

/** Full names of every service defined in our Root. */
export function allServiceNames(root: protobuf.Root = wire()): string[] {
  const out: string[] = [];
  const walk = (ns: protobuf.NamespaceBase) => {
    for (const child of ns.nestedArray) {
      if (child instanceof protobuf.Service) out.push(child.fullName.replace(/^\./, ''));
      else if (child instanceof protobuf.Namespace) walk(child);
    }
  };
  walk(root);
  return out.sort();
}
