import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the receiver got, with the exact bytes of its body. */
export interface ReceivedWebhook {
  readonly headers: IncomingHttpHeaders;
  readonly rawBody: Buffer;
  /** Whether `X-Signature` is the HMAC-SHA256 of the raw body under the receiver's secret. */
  readonly signatureValid: boolean;
}

/**
 * A partner's webhook endpoint for the tests: a real HTTP server on 127.0.0.1 that verifies
 * Medplum's `X-Signature` (hex HMAC-SHA256 of the exact body, compared in constant time) and
 * answers 401 when it does not match, 200 otherwise. `status` can be changed to simulate an
 * endpoint that is down.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  /** Status answered to correctly signed requests. */
  status = 200;
  private readonly secret: string;
  private server?: Server;

  constructor(secret: string) {
    this.secret = secret;
  }

  /**
   * Starts listening on a free port.
   * @param host - Interface to bind (loopback by default).
   * @returns The URL to register as a subscription endpoint.
   */
  async start(host = '127.0.0.1'): Promise<string> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rawBody = Buffer.concat(chunks);
        const signatureValid = verifySignature(this.secret, rawBody, req.headers['x-signature']);
        this.received.push({ headers: req.headers, rawBody, signatureValid });
        res.writeHead(signatureValid ? this.status : 401).end();
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    return `http://${host}:${(server.address() as AddressInfo).port}/webhook`;
  }

  /** Stops the server. */
  async stop(): Promise<void> {
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}

/**
 * @param secret - The shared secret.
 * @param rawBody - The exact request body.
 * @param header - The `X-Signature` header.
 * @returns True when the header is the hex HMAC-SHA256 of the body.
 */
function verifySignature(secret: string, rawBody: Buffer, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !/^[0-9a-f]{64}$/.test(header)) {
    return false;
  }
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(header, 'hex'));
}
