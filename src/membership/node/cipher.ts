import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { MembershipKeyError } from '../core/errors.js';

const FORMAT_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Bytes encryption adds to each packet or frame: version, nonce and tag. */
export const SEAL_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES;

/** Decodes a base64 key of 16, 24 or 32 bytes (AES-128, -192 or -256). */
export function parseKey(base64: string): Buffer {
  const trimmed = base64.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) {
    throw new MembershipKeyError('gossip encryption key must be base64');
  }
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new MembershipKeyError(
      `gossip encryption key must be 16, 24 or 32 bytes, got ${key.length}`,
    );
  }
  return key;
}

/**
 * Seals gossip with AES-GCM: version byte, random 96-bit nonce, ciphertext, 128-bit tag.
 * The version byte is authenticated too. Gossip runs outside TLS, so this is what keeps
 * strangers from reading the member list or injecting verdicts.
 */
export class GossipCipher {
  private readonly algorithm: 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm';

  constructor(private readonly key: Buffer) {
    this.algorithm =
      key.length === 16 ? 'aes-128-gcm' : key.length === 24 ? 'aes-192-gcm' : 'aes-256-gcm';
  }

  seal(plain: Uint8Array): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const header = Buffer.from([FORMAT_VERSION]);
    const cipher = createCipheriv(this.algorithm, this.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(header);
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([header, nonce, body, cipher.getAuthTag()]);
  }

  /** The plaintext, or undefined when the data was not sealed with our key. */
  open(data: Uint8Array): Buffer | undefined {
    if (data.length < SEAL_OVERHEAD || data[0] !== FORMAT_VERSION) return undefined;
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const nonce = buf.subarray(1, 1 + NONCE_BYTES);
    const tag = buf.subarray(buf.length - TAG_BYTES);
    const body = buf.subarray(1 + NONCE_BYTES, buf.length - TAG_BYTES);
    const decipher = createDecipheriv(this.algorithm, this.key, nonce, {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(buf.subarray(0, 1));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(body), decipher.final()]);
    } catch {
      // A wrong key or tampered bytes: authentication failed, and that is the answer.
      return undefined;
    }
  }
}
