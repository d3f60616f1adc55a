// Test doubles for the log (the `commitlog/log/testing` surface); never imported by
// production code.
export {
  FaultyFs,
  faultyFs,
  fsError,
  type FaultRule,
  type FsCall,
  type FsOp,
} from './faulty-fs.js';
