// ttrpc framing and envelopes (runtime/ttrpc/frame.ts, envelope.ts): the byte layout of ttrpc 1.1
// (containerd/ttrpc channel.go, types.go), incremental parsing across arbitrary chunk boundaries,
// oversized frames skipped without losing sync.
import {
  FrameReader,
  MAX_MESSAGE_LENGTH,
  decodeRequest,
  decodeResponse,
  encodeFrame,
  encodeRequest,
  encodeResponse,
  oversizeMessage,
  type FrameHeader,
} from '../../runtime/ttrpc';

function collect(max?: number) {
  const frames: { header: FrameHeader; payload: Buffer | undefined }[] = [];
  const reader = new FrameReader((header, payload) => frames.push({ header: { ...header }, payload: payload && Buffer.from(payload) }), max);
  return { frames, reader };
}

describe('ttrpc frames', () => {
  test('header layout: length and stream id big-endian, type, flags', () => {
    const frame = encodeFrame(0x01020305, 2, Buffer.from('abc'));
    expect(frame.toString('hex')).toBe('00000003' + '01020305' + '02' + '00' + '616263');
  });

  test('several frames in one chunk, and one frame split byte by byte', () => {
    const a = encodeFrame(1, 1, Buffer.from('hello'));
    const b = encodeFrame(3, 1, Buffer.alloc(0));
    const c = encodeFrame(5, 2, Buffer.from('x'.repeat(300)));
    const { frames, reader } = collect();
    reader.push(Buffer.concat([a, b, c]));
    expect(frames.map((f) => [f.header.streamId, f.header.type, f.payload?.toString()])).toEqual([
      [1, 1, 'hello'],
      [3, 1, ''],
      [5, 2, 'x'.repeat(300)],
    ]);

    const split = collect();
    const all = Buffer.concat([c, a, b, a]);
    for (let i = 0; i < all.length; i++) split.reader.push(all.subarray(i, i + 1));
    expect(split.frames.map((f) => [f.header.streamId, f.payload?.length])).toEqual([
      [5, 300],
      [1, 5],
      [3, 0],
      [1, 5],
    ]);
    expect(split.reader.idle).toBe(true);
  });

  test('random chunking gives the same frames', () => {
    const frames = Array.from({ length: 50 }, (_, i) => encodeFrame(2 * i + 1, 1, Buffer.alloc((i * 37) % 200, i)));
    const all = Buffer.concat(frames);
    for (let round = 0; round < 20; round++) {
      const { frames: got, reader } = collect();
      let pos = 0;
      while (pos < all.length) {
        const n = 1 + Math.floor(Math.random() * 64);
        reader.push(all.subarray(pos, pos + n));
        pos += n;
      }
      expect(got.map((f) => f.header.streamId)).toEqual(frames.map((_, i) => 2 * i + 1));
      got.forEach((f, i) => expect(f.payload!.equals(Buffer.alloc((i * 37) % 200, i))).toBe(true));
    }
  });

  test('an oversized frame is skipped and reported, the next one still parses', () => {
    const { frames, reader } = collect(16);
    const big = encodeFrame(7, 1, Buffer.alloc(40, 1));
    const next = encodeFrame(9, 1, Buffer.from('ok'));
    const all = Buffer.concat([big, next]);
    reader.push(all.subarray(0, 12));
    reader.push(all.subarray(12, 30));
    reader.push(all.subarray(30));
    expect(frames).toEqual([
      { header: { length: 40, streamId: 7, type: 1, flags: 0 }, payload: undefined },
      { header: { length: 2, streamId: 9, type: 1, flags: 0 }, payload: Buffer.from('ok') },
    ]);
  });

  test('the default maximum is 4 MiB, with ttrpc\'s message text', () => {
    expect(MAX_MESSAGE_LENGTH).toBe(4194304);
    expect(oversizeMessage(5 << 20)).toBe('message length 5242880 exceed maximum message size of 4194304');
  });
});

describe('ttrpc envelopes', () => {
  test('Request encodes as ttrpc.Request (field numbers 1-5)', () => {
    const bytes = Buffer.from(
      encodeRequest({
        service: 's',
        method: 'm',
        payload: Buffer.from([0xaa]),
        timeoutNano: 2_000_000_000,
        metadata: [{ key: 'k', value: 'v' }],
      }),
    );
    // 0a01 73 | 12 01 6d | 1a 01 aa | 20 varint(2e9) | 2a 06 (0a 01 6b 12 01 76)
    expect(bytes.toString('hex')).toBe('0a0173' + '12016d' + '1a01aa' + '2080a8d6b907' + '2a060a016b120176');
    expect(decodeRequest(bytes)).toEqual({
      service: 's',
      method: 'm',
      payload: Buffer.from([0xaa]),
      timeoutNano: 2_000_000_000,
      metadata: [{ key: 'k', value: 'v' }],
    });
  });

  test('Request defaults: empty payload, no deadline, no metadata', () => {
    const bytes = encodeRequest({ service: 'a.B', method: 'C', payload: Buffer.alloc(0), timeoutNano: 0, metadata: [] });
    expect(Buffer.from(bytes).toString('hex')).toBe('0a03612e42' + '120143');
    expect(decodeRequest(bytes)).toEqual({ service: 'a.B', method: 'C', payload: Buffer.alloc(0), timeoutNano: 0, metadata: [] });
  });

  test('Response: success carries no status; errors carry google.rpc.Status', () => {
    const ok = encodeResponse({ payload: Buffer.from([1, 2]) });
    expect(Buffer.from(ok).toString('hex')).toBe('12020102');
    expect(decodeResponse(ok)).toEqual({ payload: Buffer.from([1, 2]) });
    // code 0 is the same as no status
    expect(Buffer.from(encodeResponse({ status: { code: 0, message: '' }, payload: Buffer.alloc(0) })).length).toBe(0);

    const err = encodeResponse({ status: { code: 5, message: 'nope' }, payload: Buffer.alloc(0) });
    expect(Buffer.from(err).toString('hex')).toBe('0a08' + '0805' + '12046e6f7065');
    expect(decodeResponse(err)).toEqual({ status: { code: 5, message: 'nope' }, payload: Buffer.alloc(0) });
    // An empty status message (code 0) decodes as success.
    expect(decodeResponse(Buffer.from('0a00', 'hex'))).toEqual({ payload: Buffer.alloc(0) });
  });

  test('malformed envelopes throw', () => {
    expect(() => decodeRequest(Buffer.from([0x0f]))).toThrow(); // wire type 7
    expect(() => decodeRequest(Buffer.from([0x1a, 0x05, 0x01]))).toThrow(); // bytes past the end
    expect(() => decodeResponse(Buffer.from([0x0a, 0x09]))).toThrow();
  });
});
