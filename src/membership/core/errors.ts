// Every error the membership library throws, in one place. The core is pure, so this
// file lives in core/ and the driver imports it from here.

/** A protocol setting makes no sense (names the first bad field). */
export class MembershipConfigError extends Error {
  override readonly name = 'MembershipConfigError';
}

/** A packet, message or state exchange does not parse, or would not fit when encoded. */
export class MembershipCodecError extends Error {
  override readonly name = 'MembershipCodecError';
}

/** The core was used before start(). */
export class MembershipNotStartedError extends Error {
  override readonly name = 'MembershipNotStartedError';
}

/** join() gave up: no seed address answered a state exchange. */
export class MembershipJoinError extends Error {
  override readonly name = 'MembershipJoinError';
}

/** The membership was used after close(), or started twice. */
export class MembershipClosedError extends Error {
  override readonly name = 'MembershipClosedError';
}

/** Sockets could not be bound. */
export class MembershipBindError extends Error {
  override readonly name = 'MembershipBindError';
}

/** An address that is not host:port. */
export class MembershipAddressError extends Error {
  override readonly name = 'MembershipAddressError';
}

/** A gossip key that is not base64 of 16, 24 or 32 bytes. */
export class MembershipKeyError extends Error {
  override readonly name = 'MembershipKeyError';
}

/** A state exchange over TCP that broke: refused, timed out, cut, or too large. */
export class MembershipStreamError extends Error {
  override readonly name = 'MembershipStreamError';
}
