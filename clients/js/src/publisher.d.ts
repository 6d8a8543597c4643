// Types of the tickcast publisher (src/publisher.js).
export class InvalidUpdate extends Error {}
export class QueueFull extends Error {}
export class Refused extends Error {
  code: string;
  indexes: number[];
  refused: number;
  serverMessage: string;
}
export interface Interest { selector: string; pattern: boolean; active: boolean }
export interface PublisherOptions {
  msgpack: { encode(v: unknown): Uint8Array; decode(b: Uint8Array): unknown };
  WebSocket?: unknown;
  queueSize?: number;
  batchMax?: number;
  highWater?: number;
  minBackoff?: number;
  maxBackoff?: number;
  keepLiveOnLeave?: boolean;
}
export type Fields = Record<string, number>;
export class Publisher {
  constructor(url: string, token: string, opts: PublisherOptions);
  readonly queued: number;
  readonly sent: number;
  readonly acknowledged: number;
  readonly lost: number;
  readonly reconnects: number;
  readonly fields: string[];
  connect(): Promise<void>;
  on(type: "interest", fn: (i: Interest) => void): () => void;
  on(type: "error", fn: (e: Refused) => void): () => void;
  on(type: "loss", fn: (n: number) => void): () => void;
  on(type: "reconnected", fn: (e: { reconnects: number }) => void): () => void;
  publish(topic: string, fields: Fields, opts?: { ts?: number }): Promise<void>;
  tryPublish(topic: string, fields: Fields, opts?: { ts?: number }): void;
  levels(topic: string, opts: { bids?: [number, number][]; asks?: [number, number][]; replace?: boolean }): Promise<void>;
  trade(topic: string, opts: { price: number; size: number; ts?: number }): Promise<void>;
  clear(topic: string): Promise<void>;
  flush(ms?: number): Promise<void>;
  interest(): AsyncGenerator<Interest>;
  close(): void;
}
