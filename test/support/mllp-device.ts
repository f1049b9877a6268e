import type { Hl7Message } from '@medplum/core';
import type { Hl7MessageEvent } from '@medplum/hl7';
import { Hl7Connection } from '@medplum/hl7';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

/** What a fake device does with each message it receives. */
export type DeviceBehaviour = (message: Hl7Message, connection: Hl7Connection) => void;

/** Every ACK the fake devices wrote, as ER7 (all devices of the test file). */
export const sentAcks: string[] = [];

export const answer =
  (ackCode: 'AA' | 'AE' | 'AR' | 'CA'): DeviceBehaviour =>
  (message, connection) => {
    const ack = message.buildAck({ ackCode });
    sentAcks.push(ack.toString());
    connection.send(ack);
  };

/** A device listening for MLLP on 127.0.0.1, as a lab system would. */
export class FakeDevice {
  readonly received: Hl7Message[] = [];
  connections = 0;
  behaviour: DeviceBehaviour = answer('AA');
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((socket) => {
      this.connections += 1;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      const connection = new Hl7Connection(socket);
      connection.addEventListener('message', (event: Hl7MessageEvent) => {
        this.received.push(event.message);
        this.behaviour(event.message, connection);
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get url(): string {
    return `mllp://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Drops every open connection (the device restarts its listener side). */
  dropConnections(): void {
    for (const socket of this.sockets) {
      socket.destroy();
    }
  }

  reset(): void {
    this.received.length = 0;
    this.connections = 0;
    this.behaviour = answer('AA');
  }

  async stop(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
