// Aligned columns for human output (like Go's tabwriter with the padding ctr uses).
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : (c ?? '').padEnd(widths[i] + 3)))
      .join('')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** "k=v,k2=v2" in key order, as ctr prints labels. */
export function formatLabels(labels: Record<string, string> | undefined): string {
  return Object.keys(labels ?? {})
    .sort()
    .map((k) => `${k}=${labels![k]}`)
    .join(',');
}

/** Parses "k=v" arguments into a label map; "k=" (or "k") means an empty value. */
export function parseLabelArgs(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const i = arg.indexOf('=');
    if (i === 0) throw new Error(`invalid label ${JSON.stringify(arg)}: empty key`);
    if (i < 0) out[arg] = '';
    else out[arg.slice(0, i)] = arg.slice(i + 1);
  }
  return out;
}

/** Bytes in the units ctr prints (B, KiB, MiB, …), one decimal above bytes. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** "3 seconds", "5 minutes", … since a timestamp. */
export function formatAge(ts: { seconds: number; nanos: number } | undefined, now = Date.now()): string {
  if (!ts || ts.seconds < 0) return '-';
  const s = Math.max(0, Math.floor((now - ts.seconds * 1000) / 1000));
  const steps: Array<[number, string]> = [
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ];
  for (const [n, unit] of steps) {
    if (s >= n) {
      const k = Math.floor(s / n);
      return `${k} ${unit}${k === 1 ? '' : 's'}`;
    }
  }
  return 'less than a second';
}
