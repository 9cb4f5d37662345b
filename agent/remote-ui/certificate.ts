/**
 * The Remote UI's certificate (SPEC §12): one self-signed X.509 certificate per machine, made at `init`
 * (and, for a data directory made before the Remote UI, at the agent's first start), kept beside
 * config.json. The key is ECDSA P-256 made by Node's WebCrypto; the certificate is built and signed
 * by pkijs, loaded only when one must be made (an agent that has its certificate never loads it).
 * There is no CA to vouch for it: an administrator compares the SHA-256 fingerprint the browser shows
 * with the one `mfpsync status` prints.
 *
 *   DIR/ui-cert.pem   the certificate (mode 0644: public)
 *   DIR/ui-key.pem    its private key, PKCS#8 (mode 0600)
 */
import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { MfpError } from '../../protocol/errors.js';

/** The certificate's and key's files in a data directory. */
export function certificatePaths(dataDir: string): { cert: string; key: string } {
  return { cert: join(dataDir, 'ui-cert.pem'), key: join(dataDir, 'ui-key.pem') };
}

/** A certificate and key as the HTTPS server takes them, with the fingerprint an administrator checks. */
export interface UiCertificate {
  cert: string;
  key: string;
  /** SHA-256 of the DER certificate, as browsers show it: 32 colon-separated hex pairs. */
  fingerprint: string;
}

/** Options of a new certificate. */
export interface CertificateOptions {
  /** The device name (the subject's CN, and a DNS name when it is one). */
  name: string;
  /** More host names or addresses to list (the `--host` address); the host name, localhost and the interfaces' addresses always are. */
  hosts?: readonly string[];
  /** Validity start (default now, less a day for clocks a little behind). */
  now?: number;
}

const VALID_DAYS = 3650;
const DAY_MS = 86_400_000;

/** The SHA-256 fingerprint of a PEM certificate. */
export function fingerprintOfPem(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** Reads the data directory's certificate; undefined when none was made yet. */
export function readCertificate(dataDir: string): UiCertificate | undefined {
  const paths = certificatePaths(dataDir);
  if (!existsSync(paths.cert) || !existsSync(paths.key)) return undefined;
  try {
    const cert = readFileSync(paths.cert, 'utf8');
    return { cert, key: readFileSync(paths.key, 'utf8'), fingerprint: fingerprintOfPem(cert) };
  } catch (err) {
    throw new MfpError('STORE_CORRUPT', `the Remote UI certificate ${paths.cert} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}

/** The data directory's certificate, made now if it has none. */
export async function ensureCertificate(dataDir: string, options: CertificateOptions): Promise<UiCertificate> {
  return readCertificate(dataDir) ?? writeCertificate(dataDir, await makeCertificate(options));
}

/** Writes a certificate and its key (the key 0600), each atomically. */
function writeCertificate(dataDir: string, c: UiCertificate): UiCertificate {
  const paths = certificatePaths(dataDir);
  // The key first: a certificate on disk always has its key beside it.
  for (const [path, text, mode] of [[paths.key, c.key, 0o600], [paths.cert, c.cert, 0o644]] as const) {
    writeFileSync(`${path}.tmp`, text, { mode });
    renameSync(`${path}.tmp`, path);
  }
  return c;
}

/** The names the certificate lists: DNS names and IP addresses, without repeats. */
export function subjectNames(options: CertificateOptions): { dns: string[]; ips: string[] } {
  const dns = new Set<string>();
  const ips = new Set<string>(['127.0.0.1', '::1']);
  const add = (h: string) => {
    const host = h.replace(/^\[|\]$/g, '').toLowerCase();
    if (isIP(host)) {
      if (host !== '0.0.0.0' && host !== '::') ips.add(host);
    } else if (/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(host)) dns.add(host);
  };
  for (const h of [options.name, hostname(), 'localhost', ...(options.hosts ?? [])]) add(h);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.internal) add(a.address.split('%')[0]!);
  return { dns: [...dns], ips: [...ips] };
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // Expand :: and write eight 16-bit groups.
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => Buffer.from(g.padStart(4, '0'), 'hex')));
}

function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
}

/** Makes a self-signed server certificate for the machine (pkijs and asn1js loaded for this only). */
export async function makeCertificate(options: CertificateOptions): Promise<UiCertificate> {
  const [pkijs, asn1js] = await Promise.all([import('pkijs'), import('asn1js')]);
  const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto });
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const cert = new pkijs.Certificate();
  cert.version = 2;
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // a positive INTEGER
  cert.serialNumber = new asn1js.Integer({ valueHex: serial });
  const cn = options.name.slice(0, 64) || 'mfpsync';
  for (const dn of [cert.subject, cert.issuer]) {
    dn.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn1js.Utf8String({ value: cn }) }));
    dn.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: '2.5.4.10', value: new asn1js.Utf8String({ value: 'mfpsync Remote UI' }) }));
  }
  const now = options.now ?? Date.now();
  cert.notBefore.value = new Date(now - DAY_MS);
  cert.notAfter.value = new Date(now + VALID_DAYS * DAY_MS);
  const { dns, ips } = subjectNames(options);
  const altNames = new pkijs.GeneralNames({
    names: [
      ...dns.map((value) => new pkijs.GeneralName({ type: 2, value })),
      ...ips.map((ip) => new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(ip) }) })),
    ],
  });
  cert.extensions = [
    new pkijs.Extension({ extnID: '2.5.29.17', critical: false, extnValue: altNames.toSchema().toBER(false) }),
    new pkijs.Extension({ extnID: '2.5.29.19', critical: true, extnValue: new pkijs.BasicConstraints({ cA: false }).toSchema().toBER(false) }),
    // Key usage: digitalSignature (bit 0), as an ECDSA TLS server key needs.
    new pkijs.Extension({ extnID: '2.5.29.15', critical: true, extnValue: new asn1js.BitString({ valueHex: new Uint8Array([0x80]), unusedBits: 7 }).toBER(false) }),
    new pkijs.Extension({ extnID: '2.5.29.37', critical: false, extnValue: new pkijs.ExtKeyUsage({ keyPurposes: ['1.3.6.1.5.5.7.3.1'] }).toSchema().toBER(false) }),
  ];
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey, engine);
  await cert.sign(keys.privateKey, 'SHA-256', engine);
  const certPem = pem('CERTIFICATE', cert.toSchema(true).toBER(false));
  const keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert: certPem, key: keyPem, fingerprint: fingerprintOfPem(certPem) };
}
