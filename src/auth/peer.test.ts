import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  normaliseCommonName,
  subjectOfAuthContext,
  subjectOfCertificate,
  subjectOfTlsSocket,
  verifyTlsPeer,
} from './index.js';

describe('peer subject', () => {
  it('normalises string and array CNs, last one wins, blanks are none', () => {
    assert.equal(normaliseCommonName('root'), 'root');
    assert.equal(normaliseCommonName(' root '), 'root');
    assert.equal(normaliseCommonName(['a', 'root']), 'root');
    assert.equal(normaliseCommonName([]), undefined);
    assert.equal(normaliseCommonName('  '), undefined);
    assert.equal(normaliseCommonName(undefined), undefined);
  });

  it('reads a grpc-js auth context only when it is TLS and verified', () => {
    const cert = { subject: { CN: 'root' } };
    assert.equal(
      subjectOfAuthContext({ transportSecurityType: 'ssl', sslPeerCertificate: cert }),
      'root',
    );
    // grpc-js answers {} for plaintext and for unauthorized TLS sockets.
    assert.equal(subjectOfAuthContext({}), undefined);
    assert.equal(subjectOfAuthContext(undefined), undefined);
    assert.equal(subjectOfAuthContext({ transportSecurityType: 'ssl' }), undefined);
  });

  it('never throws on odd certificate objects', () => {
    assert.equal(subjectOfCertificate(null), undefined);
    assert.equal(subjectOfCertificate({}), undefined);
    assert.equal(subjectOfCertificate({ subject: null }), undefined);
    assert.equal(subjectOfCertificate({ subject: {} }), undefined);
  });

  it('reads a TLS socket only when authorized', () => {
    const peer = { subject: { CN: 'root' } };
    const socket = (authorized: boolean, cert: object, authorizationError?: string) => ({
      authorized,
      authorizationError,
      getPeerCertificate: () => cert,
    });
    assert.equal(subjectOfTlsSocket(socket(true, peer)), 'root');
    assert.equal(subjectOfTlsSocket(socket(false, peer)), undefined);
    assert.equal(subjectOfTlsSocket({}), undefined);
    assert.equal(subjectOfTlsSocket(undefined), undefined);
    assert.deepEqual(verifyTlsPeer(socket(true, peer)), { verified: true, subject: 'root' });
    assert.deepEqual(verifyTlsPeer(socket(false, {}, 'UNABLE_TO_GET_ISSUER_CERT')), {
      verified: false,
      reason: 'no client certificate',
    });
    assert.deepEqual(verifyTlsPeer(socket(false, peer, 'CERT_HAS_EXPIRED')), {
      verified: false,
      reason: 'client certificate has expired (CERT_HAS_EXPIRED)',
    });
    assert.deepEqual(verifyTlsPeer(socket(false, peer, 'SOMETHING_NEW')), {
      verified: false,
      reason: 'client certificate not verified (SOMETHING_NEW)',
    });
    assert.deepEqual(verifyTlsPeer(socket(true, { subject: { O: 'x' } })), {
      verified: false,
      reason: 'client certificate has no subject common name (CN)',
    });
  });
});
