import type { Client } from './client';

/** What every command gets: the connected client and the global output choices. */
export interface Context {
  client: Client;
  namespace: string;
  json: boolean;
  out(text: string): void;
  err(text: string): void;
}
