// TLS to a real registry serving HTTPS with a test CA and requiring client certificates:
// configured through hosts.toml (ca, client pair, skip_verify), Docker's certs.d files, or code.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { digestOf } from '../../content-store/digest';
import { BerthError } from '../../services/errdefs';
import { RegistryClient, type RegistryClientOptions } from '../../services/remotes';
import { buildImage, pushImage, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { berthFailure as failure, readAll } from '../helpers/calls';


describe('TLS with a custom CA and client certificates', () => {
  let reg: TestRegistry | undefined;
  let image: TestImage | undefined;
  let tmp: string;
  const clients: RegistryClient[] = [];
  const newClient = (options: RegistryClientOptions) => {
    const c = new RegistryClient({ retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 }, ...options });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-tls-'));
    reg = await startRegistry({ tls: { clientCerts: true } });
    image = await buildImage({ tag: 'v1' });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    image?.remove();
    await reg?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('hosts.toml with ca and a client pair (relative paths): push, resolve, fetch', async () => {
    const hostsDir = path.join(tmp, 'certs.d');
    const dir = path.join(hostsDir, reg!.host);
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(reg!.certs!.caCert, path.join(dir, 'test-ca.pem'));
    fs.copyFileSync(reg!.certs!.clientCert, path.join(dir, 'client.pem'));
    fs.copyFileSync(reg!.certs!.clientKey, path.join(dir, 'client.key'));
    fs.writeFileSync(path.join(dir, 'hosts.toml'), `ca = "test-ca.pem"\nclient = [["client.pem", "client.key"]]\n`);
    const c = newClient({ hostsDir });
    const ref = `${reg!.host}/secure/app:v1`;
    await pushImage(c, image!, ref);
    const r = await c.resolve(ref);
    expect(r.descriptor).toEqual(image!.root);
    const l = image!.manifests[0]!.layers[0]!;
    expect(digestOf(await readAll(await c.fetch(r.ref, l)))).toBe(l.digest);
  });

  test("Docker's certs.d layout (ca.crt, client.cert, client.key) in the host_port_ directory", async () => {
    const hostsDir = path.join(tmp, 'docker-certs.d');
    const [h, p] = reg!.host.split(':');
    const dir = path.join(hostsDir, `${h}_${p}_`);
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(reg!.certs!.caCert, path.join(dir, 'ca.crt'));
    fs.copyFileSync(reg!.certs!.clientCert, path.join(dir, 'client.cert'));
    fs.copyFileSync(reg!.certs!.clientKey, path.join(dir, 'client.key'));
    await pushImage(newClient({ hosts: {
      [reg!.host]: { ca: reg!.certs!.caCert, client: [{ cert: reg!.certs!.clientCert, key: reg!.certs!.clientKey }] },
    } }), image!, `${reg!.host}/secure/app2:v1`);
    expect((await newClient({ hostsDir }).resolve(`${reg!.host}/secure/app2:v1`)).descriptor).toEqual(image!.root);
  });

  test('unknown CA: Unavailable naming the certificate problem, not retried forever', async () => {
    const err = await failure(newClient({}).resolve(`${reg!.host}/secure/app:v1`));
    expect(err.kind).toBe('Unavailable');
    expect(err.message).toMatch(/self[- ]signed|unable to (get|verify)|certificate/i);
    expect(err.message).toContain(`https://${reg!.host}/v2/secure/app/manifests/v1`);
  });

  test('skip_verify without a client certificate: the server refuses the handshake', async () => {
    const c = newClient({ hosts: { [reg!.host]: { skipVerify: true } } });
    const err = await failure(c.resolve(`${reg!.host}/secure/app:v1`));
    expect(err.kind).toBe('Unavailable');
  });

  test('skip_verify with a client certificate given as PEM text', async () => {
    const c = newClient({
      hosts: {
        [reg!.host]: {
          skipVerify: true,
          client: [{ cert: fs.readFileSync(reg!.certs!.clientCert, 'utf8'), key: fs.readFileSync(reg!.certs!.clientKey) }],
        },
      },
    });
    expect((await c.resolve(`${reg!.host}/secure/app:v1`)).descriptor).toEqual(image!.root);
  });

  test('plain HTTP to a TLS registry fails clearly', async () => {
    // Go's TLS server answers a plain HTTP request with 400 and says why.
    const err = await failure(newClient({ plainHttp: true }).resolve(`${reg!.host}/secure/app:v1`));
    expect(err.kind).toBe('InvalidArgument');
    expect(err.message).toContain(`registry ${reg!.host} answered 400 Bad Request`);
  });
});
