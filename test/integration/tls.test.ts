// The optional TCP listener requires mutual TLS: a client with a certificate from the CA gets
// through, one without a certificate (or with one from another CA) does not.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ApiError, Client } from '../../cli/client';
import { cleanup, TestDaemon, tempDir } from '../helpers/daemon';

function openssl(dir: string, ...args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA and a certificate signed by it for `name` (with 127.0.0.1 as subjectAltName). */
function makePki(dir: string, prefix: string) {
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${prefix}-ca`, '-keyout', `${prefix}-ca.key`, '-out', `${prefix}-ca.crt`);
  for (const who of ['server', 'client']) {
    openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', `${prefix}-${who}.key`, '-out', `${prefix}-${who}.csr`);
    fs.writeFileSync(path.join(dir, `${who}.ext`), who === 'server' ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' : 'extendedKeyUsage=clientAuth\n');
    openssl(dir, 'x509', '-req', '-in', `${prefix}-${who}.csr`, '-CA', `${prefix}-ca.crt`, '-CAkey', `${prefix}-ca.key`, '-CAcreateserial', '-days', '2', '-extfile', `${who}.ext`, '-out', `${prefix}-${who}.crt`);
  }
}

describe('TCP listener with mutual TLS', () => {
  let daemon: TestDaemon;
  let dir: string;
  let port: number;
  const read = (f: string) => fs.readFileSync(path.join(dir, f));

  beforeAll(async () => {
    dir = tempDir('berth-tls-');
    makePki(dir, 'good');
    makePki(dir, 'evil');
    // Find a free port by binding to 0 first.
    port = await new Promise<number>((resolve) => {
      const srv = require('node:net').createServer();
      srv.listen(0, '127.0.0.1', () => {
        const p = srv.address().port;
        srv.close(() => resolve(p));
      });
    });
    const cfg = path.join(dir, 'config.toml');
    fs.writeFileSync(
      cfg,
      `version = 2\n[grpc]\ntcp_address = "127.0.0.1:${port}"\ntcp_tls_ca = "${dir}/good-ca.crt"\ntcp_tls_cert = "${dir}/good-server.crt"\ntcp_tls_key = "${dir}/good-server.key"\n`,
    );
    daemon = new TestDaemon(dir, ['--config', cfg]);
    await daemon.start();
  });
  afterAll(async () => {
    await cleanup(daemon);
  });

  const call = async (creds: grpc.ChannelCredentials) => {
    const c = new Client(`127.0.0.1:${port}`, 'default', creds, 5000);
    try {
      return await c.unary('version', 'Version');
    } finally {
      c.close();
    }
  };

  test('a client with a certificate from the CA is served', async () => {
    const v = await call(grpc.credentials.createSsl(read('good-ca.crt'), read('good-client.key'), read('good-client.crt')));
    expect(v.version).toBeTruthy();
  });

  test('a client without a certificate is refused', async () => {
    await expect(call(grpc.credentials.createSsl(read('good-ca.crt')))).rejects.toBeInstanceOf(ApiError);
  });

  test('a client with a certificate from another CA is refused', async () => {
    await expect(call(grpc.credentials.createSsl(read('good-ca.crt'), read('evil-client.key'), read('evil-client.crt')))).rejects.toBeInstanceOf(
      ApiError,
    );
  });

  test('plain text on the TCP port is refused', async () => {
    await expect(call(grpc.credentials.createInsecure())).rejects.toBeInstanceOf(ApiError);
  });
});
