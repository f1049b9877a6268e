import type { HL7Version } from 'node-hl7-client';
import Client, { Message } from 'node-hl7-client';

/** Every answer received on a connection, by the MSA-2 it acknowledges. */
type Answers = Map<string, string[]>;

/**
 * An MLLP test sender built on `node-hl7-client`: sends ER7 text and collects every ACK
 * (a commit ACK and an application ACK arrive separately in enhanced mode).
 */
export class MllpSender {
  private readonly client: Client;
  private readonly connection: ReturnType<Client['createConnection']>;
  private readonly answers: Answers = new Map();

  /**
   * @param host - MLLP host.
   * @param port - MLLP port.
   * @param version - HL7 version of the messages (node-hl7-client checks MSH-12 against it).
   * @param encoding - Byte encoding of the channel (Node's name, e.g. `latin1`); UTF-8 by default.
   */
  constructor(host: string, port: number, version: HL7Version = '2.5.1', encoding?: BufferEncoding) {
    this.client = new Client({ host, version });
    const options = { port, version, waitAck: false, maxConnectionAttempts: 3, ...(encoding ? { encoding } : {}) };
    this.connection = this.client.createConnection(options, async (res) => {
      const text = res.getMessage().toString();
      const controlId = res.getMessage().get('MSA.2').toString();
      const list = this.answers.get(controlId) ?? [];
      list.push(text);
      this.answers.set(controlId, list);
    });
  }

  /**
   * Sends a message and waits for `count` answers to it.
   * @param er7 - The message, segments separated by CR.
   * @param count - Answers to wait for (2 in standard enhanced mode).
   * @param timeoutMs - Upper bound; resolves with what arrived so far when it passes.
   * @returns The answers, as ER7 text.
   */
  async send(er7: string, count = 1, timeoutMs = 10_000): Promise<string[]> {
    const message = new Message({ text: er7 });
    const controlId = message.get('MSH.10').toString();
    this.answers.delete(controlId);
    await this.connection.sendMessage(message);
    const deadline = Date.now() + timeoutMs;
    while ((this.answers.get(controlId)?.length ?? 0) < count && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.answers.get(controlId) ?? [];
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.connection.close();
    this.client.closeAll();
  }
}

/**
 * @param ack - An ACK as ER7 text.
 * @returns MSA-1 (AA, AE, AR, CA...).
 */
export function ackCode(ack: string | undefined): string | undefined {
  return ack?.split(/\r|\n/).find((s) => s.startsWith('MSA|'))?.split('|')[1];
}
