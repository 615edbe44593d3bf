import { defaultConfig, parseConfig, renderDefaultConfig } from '../../services/server/config';
import { BerthError } from '../../services/errdefs';

describe('config', () => {
  test('the rendered default config parses back to the defaults', () => {
    expect(parseConfig(renderDefaultConfig())).toEqual(defaultConfig());
  });

  test('a file overrides what it names and keeps the rest', () => {
    const c = parseConfig('version = 2\nroot = "/x"\n[grpc]\naddress = "/y.sock"\ngid = 42\n');
    expect(c.root).toBe('/x');
    expect(c.grpc.address).toBe('/y.sock');
    expect(c.grpc.gid).toBe(42);
    expect(c.state).toBe('/run/berth');
  });

  test.each([
    ['version = 1', /unsupported version 1/],
    ['rot = "/x"', /unknown key rot/],
    ['[grpc]\nuid = "0"', /grpc.uid must be a number/],
    ['grpc = 3', /grpc must be a table/],
    ['[debug]\nlevel = "loud"', /debug.level "loud" is not one of/],
    ['[grpc]\ntcp_address = "127.0.0.1:1"', /requires grpc.tcp_tls_ca/],
    ['root = ', /config/],
  ])('%j is refused with a clear message', (text, message) => {
    let err: unknown;
    try {
      parseConfig(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BerthError);
    expect((err as BerthError).kind).toBe('InvalidArgument');
    expect((err as Error).message).toMatch(message);
  });

  test('plugin tables are kept as given', () => {
    const c = parseConfig('[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "pause"\n');
    expect(c.plugins['io.containerd.grpc.v1.cri']).toEqual({ sandbox_image: 'pause' });
  });
});

test('deploy/config.toml is exactly what `berthd config default` prints', () => {
  const fs = require('node:fs') as typeof import('node:fs');
  const path = require('node:path') as typeof import('node:path');
  const file = fs.readFileSync(path.resolve(__dirname, '../../../deploy/config.toml'), 'utf8');
  const strip = (s: string) => s.split('\n').filter((l) => !l.startsWith('#')).join('\n');
  expect(strip(file)).toBe(strip(renderDefaultConfig()));
});
