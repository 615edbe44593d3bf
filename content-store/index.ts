// The local content store: blobs by digest, resumable ingests. See store.ts.
export { ContentStore, DEFAULT_INGEST_EXPIRY } from './store';
export { ContentWriter } from './writer';
export { BlobReader } from './reader';
export { RefLocks, formatDuration } from './locks';
export {
  ALGORITHM,
  Digester,
  EMPTY_DIGEST,
  digestFromHex,
  digestHex,
  digestOf,
  digestProblem,
  isDigest,
  validateDigest,
  type Digest,
} from './digest';
export type {
  CommitOptions,
  ContentStoreOptions,
  ExpiredIngest,
  Info,
  ReadStreamOptions,
  Status,
  StoreLogger,
  WalkOptions,
  WriterOptions,
} from './types';
