import type { Socket } from 'node:net';
import { MembershipStreamError } from '../core/errors.js';

/** Writes one frame: a u32 big-endian length, then the payload. */
export function writeFrame(socket: Socket, payload: Uint8Array): void {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(payload.length);
  socket.write(Buffer.concat([header, payload]));
}

/**
 * Reads one frame from `socket`, refusing frames over `maxBytes` and giving up after
 * `timeoutMs`. The socket is destroyed on failure.
 */
export function readFrame(socket: Socket, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let expected = -1;
    const timer = setTimeout(
      () => fail(new MembershipStreamError(`no frame within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const fail = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error): void =>
      fail(new MembershipStreamError(err.message, { cause: err }));
    const onClose = (): void =>
      fail(new MembershipStreamError('connection closed before a whole frame'));
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      received += chunk.length;
      if (expected < 0 && received >= 4) {
        expected = Buffer.concat(chunks).readUInt32BE(0);
        if (expected > maxBytes) {
          fail(new MembershipStreamError(`frame of ${expected} bytes exceeds ${maxBytes}`));
          return;
        }
      }
      if (expected >= 0 && received >= 4 + expected) {
        cleanup();
        resolve(Buffer.concat(chunks).subarray(4, 4 + expected));
      }
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}
