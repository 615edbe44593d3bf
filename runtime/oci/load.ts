// Reading a bundle's config.json.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { BerthError } from '../../services/errdefs';
import { isErrno } from '../native/errno';
import type { RunnableSpec } from './types';
import { ValidateOptions, validateSpec } from './validate';

export const CONFIG_FILENAME = 'config.json';

/** The largest config.json accepted (Docker's specs are ~9 KB; seccomp profiles make them ~30 KB). */
const MAX_CONFIG_BYTES = 4 << 20;

/**
 * Reads and validates `<bundle>/config.json`. Errors: NotFound when there is no config.json,
 * InvalidArgument when it is not JSON or not a valid spec (every problem named).
 */
export async function loadSpec(bundle: string, opts: ValidateOptions = {}): Promise<RunnableSpec> {
  const file = path.join(bundle, CONFIG_FILENAME);
  let text: string;
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) throw new BerthError('InvalidArgument', `bundle ${bundle}: ${CONFIG_FILENAME} is not a regular file`);
    if (st.size > MAX_CONFIG_BYTES) throw new BerthError('InvalidArgument', `bundle ${bundle}: ${CONFIG_FILENAME} is larger than ${MAX_CONFIG_BYTES} bytes`);
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new BerthError('NotFound', `bundle ${bundle}: no ${CONFIG_FILENAME}`, { cause: err });
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new BerthError('InvalidArgument', `bundle ${bundle}: ${CONFIG_FILENAME} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  try {
    return validateSpec(parsed, opts);
  } catch (err) {
    if (err instanceof BerthError) throw new BerthError(err.kind, `bundle ${bundle}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** The rootfs directory a spec names: root.path, relative to the bundle unless absolute. */
export function rootfsPath(bundle: string, spec: { root?: { path: string } }): string {
  const p = spec.root?.path ?? 'rootfs';
  return path.isAbsolute(p) ? p : path.join(bundle, p);
}
