// A known race in grpc-js over Node's HTTP/2 (grpc/grpc-node#984, #1871;
// nodejs/node#57416): when a client destroys a stream while the server is answering it
// (a stranger sending garbage does this often), `respond()` throws
// ERR_HTTP2_INVALID_STREAM from inside an event handler, and the process would die. The
// answer was for a stream that no longer exists, so nothing is lost by ignoring it.
// Every other uncaught exception still ends the process, as Node would.

export interface GuardLogger {
  warn(fields: object, message: string): void;
  fatal(fields: object, message: string): void;
}

export function guardHttp2StreamRaces(logger: GuardLogger): () => void {
  let ignored = 0;
  const onUncaught = (err: Error & { code?: string }): void => {
    if (err.code === 'ERR_HTTP2_INVALID_STREAM') {
      // Rate-limited: one line for the first, then every 1,000th.
      if (ignored++ % 1000 === 0)
        logger.warn(
          { err, ignored },
          'ignored an answer to an HTTP/2 stream the client had already destroyed',
        );
      return;
    }
    logger.fatal({ err }, 'uncaught exception; the node stops');
    process.stderr.write(`${err.stack ?? String(err)}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', onUncaught);
  return () => process.off('uncaughtException', onUncaught);
}
