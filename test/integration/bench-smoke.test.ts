// `npm run bench` must not rot silently: bench/all with --quick --only rpc starts containerd and
// berthd, measures, and writes JSON with every metric on both sides and a ratio. No wall-clock
// assertions: only that the numbers are there, positive and finite.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT, tempDir } from '../helpers/daemon';
import { containerdAvailable } from '../helpers/containerd';

const run = promisify(execFile);
const ALL = path.join(PACKAGE_ROOT, 'dist', 'bench', 'all.js');

(containerdAvailable() ? describe : describe.skip)('bench/all --quick --only rpc', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('berth-bench-smoke-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('prints the table and writes JSON with the rpc metrics for berth and containerd', async () => {
    const json = path.join(dir, 'out.json');
    const { stdout } = await run(process.execPath, [ALL, '--quick', '--only', 'rpc', '--json', json], { timeout: 90_000, maxBuffer: 1 << 24 });
    expect(stdout).toContain('berth/containerd');
    expect(stdout).toContain(json);

    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(r.failures).toEqual([]);
    for (const k of ['cpu', 'cores', 'memoryGiB', 'kernel', 'node', 'containerd']) expect(r.machine[k]).toBeTruthy();
    expect(r.machine.containerd).toMatch(/containerd/);
    expect(stdout).toContain(String(r.machine.cpu));

    const names = r.metrics.map((m: { name: string }) => m.name);
    for (const method of ['Version/Version', 'Containers/List']) {
      for (const kind of ['round trip', 'throughput']) expect(names.some((n: string) => n.includes(method) && n.includes(kind))).toBe(true);
    }
    for (const m of r.metrics) {
      expect(['lower', 'higher']).toContain(m.better);
      for (const side of [m.berth, m.containerd]) {
        for (const k of ['median', 'min', 'max']) {
          expect(Number.isFinite(side[k])).toBe(true);
          expect(side[k]).toBeGreaterThan(0);
        }
        expect(side.min).toBeLessThanOrEqual(side.median);
        expect(side.median).toBeLessThanOrEqual(side.max);
      }
      expect(Number.isFinite(m.ratio)).toBe(true);
      expect(m.ratio).toBeGreaterThan(0);
      expect(m.ratio).toBeCloseTo(m.berth.median / m.containerd.median, 6);
    }
  }, 120_000);
});
