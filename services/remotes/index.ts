// services/remotes: the OCI distribution client (resolve, fetch, push, auth) and the image model
// the daemon's pull and push are built on.
export * from './references';
export * from './images';
export * from './hosts';
export * from './credentials';
export * from './auth';
export * from './errors';
export * from './limit';
export {
  DEFAULT_RETRY,
  backoffDelay,
  isRetryableNetworkError,
  isRetryableStatus,
  type RetryPolicy,
} from './transport';
export * from './registry';
