// OCI runtime spec: types (the subset Berth honours), loading a bundle's config.json, validation
// that names every problem and every unsupported field, and containerd-compatible defaults.
export * from './types';
export * from './validate';
export * from './defaults';
export * from './load';
