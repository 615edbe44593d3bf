// berth images pull and push against a registry that requires a bearer token (the registry's
// token auth, with a token server the test runs): credentials reach the daemon's client.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BERTH, cleanup, startDaemon, type TestDaemon } from '../helpers/daemon';
import { buildImage, skopeoCopy, type TestImage } from '../helpers/images';
import { startRegistry, type TestRegistry } from '../helpers/registry';

const run = promisify(execFile);

describe('pull and push with bearer-token auth', () => {
  let daemon: TestDaemon;
  let registry: TestRegistry;
  let image: TestImage;
  const berth = (...args: string[]) => run(process.execPath, [BERTH, '--address', daemon.address, ...args], { timeout: 60_000 });
  const failure = (...args: string[]) =>
    berth(...args).then(
      () => '',
      (e) => String(e.stderr),
    );

  beforeAll(async () => {
    registry = await startRegistry({ tokenAuth: { users: { alice: 's3cret' } } });
    image = await buildImage();
    await skopeoCopy(image, `${registry.host}/private/app:1`, { creds: 'alice:s3cret' });
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await cleanup(daemon);
    await registry?.stop();
    image?.remove();
  });

  test('without credentials the pull is refused, naming the registry, and records nothing', async () => {
    const err = await failure('images', 'pull', '--plain-http', `${registry.host}/private/app:1`);
    expect(err).toContain(registry.host);
    expect(err).toMatch(/permission denied|unauthorized|authentication/i);
    expect((await berth('images', 'ls', '-q')).stdout).toBe('');
    expect(await failure('images', 'pull', '--plain-http', '-u', 'alice:wrong', `${registry.host}/private/app:1`)).toMatch(/permission denied|unauthorized/i);
  });

  test('with credentials pull works, and push to another repository too', async () => {
    await berth('images', 'pull', '--plain-http', '-u', 'alice:s3cret', `${registry.host}/private/app:1`);
    expect((await berth('images', 'ls', '-q')).stdout.trim()).toBe(`${registry.host}/private/app:1`);
    await berth('images', 'tag', `${registry.host}/private/app:1`, `${registry.host}/private/copy:2`);
    expect(await failure('images', 'push', '--plain-http', `${registry.host}/private/copy:2`)).toMatch(/permission denied|unauthorized/i);
    await berth('images', 'push', '--plain-http', '-u', 'alice:s3cret', `${registry.host}/private/copy:2`);
    // pull the pushed copy back into another namespace
    await run(process.execPath, [BERTH, '--address', daemon.address, '-n', 'other', 'images', 'pull', '--plain-http', '-u', 'alice:s3cret', `${registry.host}/private/copy:2`]);
    const check = (await run(process.execPath, [BERTH, '--address', daemon.address, '-n', 'other', 'images', 'check'])).stdout;
    expect(check).toMatch(/complete/);
  });
});
