// Wire-compatibility check: our .proto files (proto/) against containerd's own definitions as
// packaged by Debian (golang-github-containerd-containerd-dev, golang-github-containerd-cgroups-dev).
//
// For every message, enum and service in the reference packages we require the same full name,
// the same fields (name, number, resolved type, repeated/map shape, map key type, packing, oneof),
// the same enum values and the same methods (request/response types, streaming flags). Anything we
// define in those packages that the reference lacks is reported too (usually a typo).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

const OUR_PROTO_DIR = path.resolve(__dirname, '../../../proto');

const GOCODE_SRC = '/usr/share/gocode/src';
const CONTAINERD_SRC = path.join(GOCODE_SRC, 'github.com/containerd/containerd');
const CGROUPS_SRC = path.join(GOCODE_SRC, 'github.com/containerd/cgroups');
const GOGO_PROTO = path.join(GOCODE_SRC, 'github.com/gogo/protobuf/gogoproto/gogo.proto');
const GOGO_GOOGLEAPIS = path.join(GOCODE_SRC, 'github.com/gogo/googleapis');
/** protobufjs ships the well-known types it does not bundle in code (descriptor.proto, ...). */
const PROTOBUFJS_GOOGLE = path.dirname(require.resolve('protobufjs/package.json'));

/** Reference files, relative to GOCODE_SRC. The api/ tree is walked; the rest are listed. */
const REFERENCE_API_DIR = 'github.com/containerd/containerd/api';
const REFERENCE_EXTRA_FILES = [
  'github.com/containerd/containerd/runtime/v2/task/shim.proto',
  'github.com/containerd/containerd/runtime/v2/runc/options/oci.proto',
];
const CGROUPS_CANDIDATES: Record<string, string[]> = {
  'io.containerd.cgroups.v1': ['stats/v1/metrics.proto', 'cgroup1/stats/metrics.proto'],
  'io.containerd.cgroups.v2': ['v2/stats/metrics.proto', 'cgroup2/stats/metrics.proto'],
};

/** Packages whose contents must match (a package, or a prefix ending in "."). */
const CHECKED_PACKAGES = [
  'containerd.services.',
  'containerd.types',
  'containerd.v1.types',
  'containerd.events',
  'containerd.task.v2',
  'containerd.runc.v1',
  'io.containerd.cgroups.v1',
  'io.containerd.cgroups.v2',
  'google.rpc', // only Status, imported by introspection
];

const INSTALL_HINT =
  'install the reference protos with `apt-get install -y golang-github-containerd-containerd-dev ' +
  'golang-github-containerd-cgroups-dev`';

function listProtoFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith('.proto')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

function loadOurs(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    if (target.startsWith('google/protobuf/')) return path.join(PROTOBUFJS_GOOGLE, target);
    return path.join(OUR_PROTO_DIR, target);
  };
  root.loadSync(listProtoFiles(OUR_PROTO_DIR), { keepCase: true });
  root.resolveAll();
  return root;
}

function referenceFiles(): string[] {
  const missing: string[] = [];
  if (!fs.existsSync(path.join(CONTAINERD_SRC, 'api'))) {
    missing.push(`${path.join(CONTAINERD_SRC, 'api')} (golang-github-containerd-containerd-dev)`);
  }
  for (const rel of REFERENCE_EXTRA_FILES) {
    if (!fs.existsSync(path.join(GOCODE_SRC, rel))) {
      missing.push(`${path.join(GOCODE_SRC, rel)} (golang-github-containerd-containerd-dev)`);
    }
  }
  if (!fs.existsSync(GOGO_PROTO)) missing.push(`${GOGO_PROTO} (golang-github-gogo-protobuf-dev)`);
  const rpcStatus = path.join(GOGO_GOOGLEAPIS, 'google/rpc/status.proto');
  if (!fs.existsSync(rpcStatus)) missing.push(`${rpcStatus} (golang-github-gogo-googleapis-dev)`);
  const cgroups: string[] = [];
  for (const [pkg, candidates] of Object.entries(CGROUPS_CANDIDATES)) {
    const found = candidates.map((c) => path.join(CGROUPS_SRC, c)).find((p) => fs.existsSync(p));
    if (found) cgroups.push(found);
    else missing.push(`${pkg} metrics.proto under ${CGROUPS_SRC} (golang-github-containerd-cgroups-dev)`);
  }
  if (missing.length > 0) {
    throw new Error(`Reference protos not found:\n  ${missing.join('\n  ')}\nPlease ${INSTALL_HINT}.`);
  }
  return [
    ...listProtoFiles(path.join(GOCODE_SRC, REFERENCE_API_DIR)),
    ...REFERENCE_EXTRA_FILES.map((rel) => path.join(GOCODE_SRC, rel)),
    ...cgroups,
  ];
}

function loadReference(): protobuf.Root {
  const files = referenceFiles();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    if (target === 'gogoproto/gogo.proto') return GOGO_PROTO;
    if (target.startsWith('google/protobuf/')) return path.join(PROTOBUFJS_GOOGLE, target);
    if (target.startsWith('google/rpc/')) return path.join(GOGO_GOOGLEAPIS, target);
    return path.join(GOCODE_SRC, target); // github.com/... imports
  };
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

// ---- reflection helpers ----------------------------------------------------------------------

const strip = (fullName: string) => fullName.replace(/^\./, '');

function inCheckedPackage(fullName: string): boolean {
  return CHECKED_PACKAGES.some((p) => (p.endsWith('.') ? fullName.startsWith(p) : fullName.startsWith(`${p}.`)));
}

interface Definitions {
  types: Map<string, protobuf.Type>;
  enums: Map<string, protobuf.Enum>;
  services: Map<string, protobuf.Service>;
}

/** Every message (including nested ones), enum and service of the checked packages. */
function collect(root: protobuf.Root): Definitions {
  const defs: Definitions = { types: new Map(), enums: new Map(), services: new Map() };
  const walk = (ns: protobuf.NamespaceBase) => {
    for (const child of ns.nestedArray) {
      const name = strip(child.fullName);
      if (child instanceof protobuf.Type) {
        if (inCheckedPackage(name)) defs.types.set(name, child);
      } else if (child instanceof protobuf.Enum) {
        if (inCheckedPackage(name)) defs.enums.set(name, child);
      } else if (child instanceof protobuf.Service) {
        if (inCheckedPackage(name)) defs.services.set(name, child);
      }
      if (child instanceof protobuf.Namespace) walk(child); // Type and Service extend Namespace
    }
  };
  walk(root);
  return defs;
}

/** A field's type: the resolved full name for messages/enums, the scalar keyword otherwise. */
function fieldType(field: protobuf.Field): string {
  return field.resolvedType ? strip(field.resolvedType.fullName) : field.type;
}

function describeField(field: protobuf.Field): Record<string, unknown> {
  const map = field instanceof protobuf.MapField;
  return {
    id: field.id,
    type: fieldType(field),
    repeated: field.repeated,
    map,
    keyType: map ? (field as protobuf.MapField).keyType : undefined,
    packed: field.repeated ? field.packed : undefined,
    oneof: field.partOf ? field.partOf.name : undefined,
  };
}

function compareMessage(name: string, ref: protobuf.Type, ours: protobuf.Type, problems: string[]) {
  for (const [fname, rf] of Object.entries(ref.fields)) {
    const of = ours.fields[fname];
    if (!of) {
      problems.push(`${name}.${fname}: field missing in ours (reference: ${rf.id} ${fieldType(rf)})`);
      continue;
    }
    const rd = describeField(rf);
    const od = describeField(of);
    for (const key of Object.keys(rd)) {
      if (rd[key] !== od[key]) {
        problems.push(`${name}.${fname}: ${key} differs: reference ${String(rd[key])}, ours ${String(od[key])}`);
      }
    }
  }
  for (const [fname, of] of Object.entries(ours.fields)) {
    if (!ref.fields[fname]) problems.push(`${name}.${fname}: extra field in ours (${of.id} ${fieldType(of)})`);
  }
  const refOneofs = Object.keys(ref.oneofs ?? {}).sort().join(',');
  const ourOneofs = Object.keys(ours.oneofs ?? {}).sort().join(',');
  if (refOneofs !== ourOneofs) problems.push(`${name}: oneofs differ: reference [${refOneofs}], ours [${ourOneofs}]`);
}

function compareEnum(name: string, ref: protobuf.Enum, ours: protobuf.Enum, problems: string[]) {
  for (const [vname, id] of Object.entries(ref.values)) {
    if (!(vname in ours.values)) problems.push(`${name}.${vname}: enum value missing in ours (reference ${id})`);
    else if (ours.values[vname] !== id) {
      problems.push(`${name}.${vname}: enum number differs: reference ${id}, ours ${ours.values[vname]}`);
    }
  }
  for (const [vname, id] of Object.entries(ours.values)) {
    if (!(vname in ref.values)) problems.push(`${name}.${vname}: extra enum value in ours (${id})`);
  }
}

function describeMethod(m: protobuf.Method): Record<string, unknown> {
  return {
    request: m.resolvedRequestType ? strip(m.resolvedRequestType.fullName) : m.requestType,
    response: m.resolvedResponseType ? strip(m.resolvedResponseType.fullName) : m.responseType,
    requestStream: Boolean(m.requestStream),
    responseStream: Boolean(m.responseStream),
  };
}

function compareService(name: string, ref: protobuf.Service, ours: protobuf.Service, problems: string[]) {
  for (const [mname, rm] of Object.entries(ref.methods)) {
    const om = ours.methods[mname];
    if (!om) {
      problems.push(`${name}/${mname}: method missing in ours`);
      continue;
    }
    const rd = describeMethod(rm);
    const od = describeMethod(om);
    for (const key of Object.keys(rd)) {
      if (rd[key] !== od[key]) {
        problems.push(`${name}/${mname}: ${key} differs: reference ${String(rd[key])}, ours ${String(od[key])}`);
      }
    }
  }
  for (const mname of Object.keys(ours.methods)) {
    if (!ref.methods[mname]) problems.push(`${name}/${mname}: extra method in ours`);
  }
}

function assertNoProblems(what: string, problems: string[]) {
  if (problems.length > 0) {
    throw new Error(`${problems.length} ${what} difference(s) from the reference:\n  ${problems.join('\n  ')}`);
  }
}

// ---- tests -----------------------------------------------------------------------------------

describe('proto wire compatibility with containerd 1.6', () => {
  let ours: Definitions;
  let ref: Definitions;
  let loadError: Error | undefined;

  beforeAll(() => {
    try {
      ref = collect(loadReference());
    } catch (err) {
      loadError = err as Error;
      return;
    }
    ours = collect(loadOurs());
  });

  const requireReference = () => {
    if (loadError) throw loadError;
  };

  test('the reference protos are installed and cover every checked package', () => {
    requireReference();
    const packages = new Set<string>();
    for (const name of [...ref.types.keys(), ...ref.enums.keys(), ...ref.services.keys()]) {
      packages.add(name.slice(0, name.lastIndexOf('.')));
    }
    const uncovered = CHECKED_PACKAGES.filter(
      (p) => ![...packages].some((pkg) => (p.endsWith('.') ? pkg.startsWith(p) : pkg === p)),
    );
    assertNoProblems('coverage', uncovered.map((p) => `reference defines nothing in ${p} (${INSTALL_HINT})`));
    // Guard against a walk that silently finds (almost) nothing.
    expect(ref.types.size).toBeGreaterThan(150);
    expect(ref.services.size).toBeGreaterThanOrEqual(13);
  });

  test('our .proto files load and resolve', () => {
    requireReference();
    expect(ours.types.size).toBeGreaterThan(0);
  });

  test('every reference message exists with identical fields', () => {
    requireReference();
    const problems: string[] = [];
    for (const [name, rt] of ref.types) {
      const ot = ours.types.get(name);
      if (!ot) problems.push(`${name}: message missing in ours`);
      else compareMessage(name, rt, ot, problems);
    }
    assertNoProblems('message', problems);
  });

  test('every reference enum exists with identical values', () => {
    requireReference();
    const problems: string[] = [];
    for (const [name, re] of ref.enums) {
      const oe = ours.enums.get(name);
      if (!oe) problems.push(`${name}: enum missing in ours`);
      else compareEnum(name, re, oe, problems);
    }
    assertNoProblems('enum', problems);
  });

  test('every reference service exists with identical methods', () => {
    requireReference();
    const problems: string[] = [];
    for (const [name, rs] of ref.services) {
      const os = ours.services.get(name);
      if (!os) problems.push(`${name}: service missing in ours`);
      else compareService(name, rs, os, problems);
    }
    assertNoProblems('service', problems);
  });

  test('we define nothing extra in the reference packages', () => {
    requireReference();
    const problems: string[] = [];
    for (const name of ours.types.keys()) if (!ref.types.has(name)) problems.push(`${name}: message not in reference`);
    for (const name of ours.enums.keys()) if (!ref.enums.has(name)) problems.push(`${name}: enum not in reference`);
    for (const name of ours.services.keys()) {
      if (!ref.services.has(name)) problems.push(`${name}: service not in reference`);
    }
    assertNoProblems('extra definition', problems);
  });

  test('google.rpc.Status and grpc.health.v1 have the public shapes', () => {
    const root = loadOurs();
    const status = root.lookupType('google.rpc.Status');
    expect(Object.values(status.fields).map((f) => [f.name, f.id, fieldType(f), f.repeated])).toEqual([
      ['code', 1, 'int32', false],
      ['message', 2, 'string', false],
      ['details', 3, 'google.protobuf.Any', true],
    ]);
    const health = root.lookupService('grpc.health.v1.Health');
    expect(Object.values(health.methods).map(describeMethod)).toEqual([
      {
        request: 'grpc.health.v1.HealthCheckRequest',
        response: 'grpc.health.v1.HealthCheckResponse',
        requestStream: false,
        responseStream: false,
      },
      {
        request: 'grpc.health.v1.HealthCheckRequest',
        response: 'grpc.health.v1.HealthCheckResponse',
        requestStream: false,
        responseStream: true,
      },
    ]);
    expect(root.lookupEnum('grpc.health.v1.HealthCheckResponse.ServingStatus').values).toEqual({
      UNKNOWN: 0,
      SERVING: 1,
      NOT_SERVING: 2,
      SERVICE_UNKNOWN: 3,
    });
  });
});
