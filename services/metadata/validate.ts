// containerd's validation rules, one function each: identifiers (namespaces, ids, topic
// components) and labels. Messages match containerd's so clients see the same text.
import { BerthError } from '../errdefs';

const IDENTIFIER_MAX_LENGTH = 76;
const IDENTIFIER_RE = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;
const IDENTIFIER_RE_TEXT = '^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$';

/** Names that become path components and keys: namespaces, lease ids, container ids, topic parts. */
export function validateIdentifier(s: string): void {
  if (s.length === 0) throw new BerthError('InvalidArgument', 'identifier must not be empty');
  if (s.length > IDENTIFIER_MAX_LENGTH) {
    throw new BerthError(
      'InvalidArgument',
      `identifier ${JSON.stringify(s)} greater than maximum length (${IDENTIFIER_MAX_LENGTH} characters)`,
    );
  }
  if (!IDENTIFIER_RE.test(s)) {
    throw new BerthError('InvalidArgument', `identifier ${JSON.stringify(s)} must match ${IDENTIFIER_RE_TEXT}`);
  }
}

const LABEL_MAX_SIZE = 4096;

/** One label: key and value together at most 4096 bytes. */
export function validateLabel(key: string, value: string): void {
  if (Buffer.byteLength(key) + Buffer.byteLength(value) > LABEL_MAX_SIZE) {
    const shortKey = key.length > 10 ? key.slice(0, 10) : key;
    throw new BerthError(
      'InvalidArgument',
      `label key and value greater than maximum size (${LABEL_MAX_SIZE} bytes), key: ${shortKey}`,
    );
  }
}

/** Every label of a map; `what` prefixes the message as containerd does ("namespace.Labels"). */
export function validateLabels(labels: Record<string, string> | undefined, what?: string): void {
  for (const [k, v] of Object.entries(labels ?? {})) {
    try {
      validateLabel(k, v);
    } catch (err) {
      if (!what) throw err;
      throw new BerthError('InvalidArgument', `${what}: ${(err as Error).message}`);
    }
  }
}
