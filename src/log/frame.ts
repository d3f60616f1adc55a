// The store's record framing: [crc32 u32 LE][length u32 LE][payload]. The CRC covers
// the length field and the payload (bytes 4 .. 8+length), so a torn length is caught
// as surely as a torn payload.
import { crc32 } from './crc.js';
import { FRAME_HEADER_BYTES } from './options.js';

export function frameSize(payloadBytes: number): number {
  return FRAME_HEADER_BYTES + payloadBytes;
}

/** Writes one frame into `out` at `at`; returns the position after it. */
export function writeFrame(out: Buffer, at: number, payload: Uint8Array): number {
  out.writeUInt32LE(payload.length, at + 4);
  out.set(payload, at + FRAME_HEADER_BYTES);
  const end = at + FRAME_HEADER_BYTES + payload.length;
  out.writeUInt32LE(crc32(out, at + 4, end), at);
  return end;
}

/** Why the bytes at a position are not a valid frame, or undefined if they are. */
export function frameProblem(buf: Buffer, at: number, maxPayload: number): string | undefined {
  if (buf.length - at < FRAME_HEADER_BYTES) return 'incomplete frame header';
  const length = buf.readUInt32LE(at + 4);
  if (length > maxPayload) return `length ${length} exceeds the maximum record size`;
  const end = at + FRAME_HEADER_BYTES + length;
  if (end > buf.length) return `frame of ${length} bytes runs past the end of the data`;
  if (crc32(buf, at + 4, end) !== buf.readUInt32LE(at)) return 'checksum mismatch';
  return undefined;
}

/** The payload of the (already validated) frame at `at`, as a view. */
export function payloadAt(buf: Buffer, at: number): Buffer {
  const start = at + FRAME_HEADER_BYTES;
  return buf.subarray(start, start + buf.readUInt32LE(at + 4));
}
