// Written by hand: the public API is JavaScript; the native addon underneath
// is internal.
import type { IncomingMessage, ServerResponse, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Http2SecureServer, Http2Server } from 'node:http2';
import type { Socket } from 'node:net';

export type Supervisor = 'rsup' | 'pm2' | 'systemd' | 'none';

export interface ShutdownOptions {
  /** Shown in logs when the handler or server fails or overruns. */
  name?: string;
  /**
   * Shutdown deadline in milliseconds when no supervisor states one
   * (systemd, no supervisor). Default 10000. rsup's and PM2's kill timeout
   * take precedence.
   */
  timeout?: number;
}

/**
 * Tells the supervisor the app is ready for traffic. Harmless to call twice.
 * Given an error (as `app.listen(port, ready)` does in express 5 when the
 * listen fails), it reports nothing; with servers given to `graceful()` that
 * are not listening yet, it waits for them, and reports nothing if one
 * fails to listen.
 */
export function ready(err?: unknown): void;

/**
 * Why the process is asked to stop: `'reload'` when rsup replaces it (the
 * app goes on: reload, restart, scale down), `'stop'` when the app stops
 * (`stop`, `delete`, the daemon's shutdown), `'unknown'` when nobody says
 * (PM2, a plain signal, an rsup older than the reason).
 */
export type ShutdownReason = 'reload' | 'stop' | 'unknown';

export interface ShutdownInfo {
  reason: ShutdownReason;
}

/**
 * Registers a cleanup function run once when the process is asked to stop,
 * after servers have drained and tracked work has settled; handlers run
 * last registered first. Returns a function that unregisters it.
 */
export function onShutdown(fn: (info: ShutdownInfo) => unknown | Promise<unknown>, opts?: ShutdownOptions): () => void;

type AnyServer = HttpServer | HttpsServer | Http2Server | Http2SecureServer;

export interface GracefulOptions extends ShutdownOptions {
  /**
   * What the drain does with connections that left HTTP through `upgrade`
   * (WebSocket, socket.io's websocket transport, other protocols).
   * - `true` (default): a `ws` WebSocket (socket.io's included) gets a close
   *   frame, 1012 Service Restart when the reason is `'reload'`, else 1001
   *   Going Away; others are left alone until the deadline.
   * - `false`: all are left to the app; the drain waits for them until its
   *   deadline.
   * - a function: called once, when the server has stopped accepting, with
   *   the open upgraded sockets and why the process stops, to ask them to go
   *   in the app's own way.
   * Event streams (`text/event-stream`) are ended in every case.
   */
  websockets?: boolean | ((sockets: Socket[], info: ShutdownInfo) => void);
}

/**
 * Drains `server` on shutdown: stops accepting, closes idle keep-alive
 * connections, lets in-flight requests finish with `Connection: close`,
 * asks WebSocket (`ws`, socket.io) connections to go with a close frame
 * (1012 on a reload, else 1001) and
 * ends server-sent event streams, and destroys what is left at the
 * deadline. Returns the server.
 */
export function graceful<S extends AnyServer>(server: S, opts?: GracefulOptions): S;

/** Background work that shutdown waits for before cleanup handlers run. */
export function track<T>(work: Promise<T> | (() => T | Promise<T>)): Promise<Awaited<T>>;

export function isShuttingDown(): boolean;

/** A handler answering 200, or 503 with `Connection: close` while shutting down. */
export function readiness(opts?: {
  ok?: string;
  draining?: string;
}): (req: IncomingMessage, res: ServerResponse) => void;

/** The supervisor detected at start-up. */
export function supervisor(): Supervisor;

declare const rsup: {
  ready: typeof ready;
  onShutdown: typeof onShutdown;
  graceful: typeof graceful;
  track: typeof track;
  isShuttingDown: typeof isShuttingDown;
  readiness: typeof readiness;
  supervisor: typeof supervisor;
};
export default rsup;
