// Written by hand: PM2's programmatic API (`require('pm2')`) as rsup
// answers it. Shapes follow PM2's; fields rsup does not fill are optional.
import type { EventEmitter } from 'node:events';

export type Callback<T> = (err: Error | null, result: T) => void;

/** An app's options, as in an ecosystem file (snake_case or camelCase). */
export interface StartOptions {
  script?: string;
  name?: string;
  args?: string | string[];
  cwd?: string;
  interpreter?: string;
  node_args?: string | string[];
  instances?: number | string;
  exec_mode?: 'fork' | 'cluster' | 'fork_mode' | 'cluster_mode';
  env?: Record<string, string | number | boolean>;
  wait_ready?: boolean;
  listen_timeout?: number;
  kill_timeout?: number;
  shutdown_with_message?: boolean;
  autorestart?: boolean;
  max_restarts?: number;
  min_uptime?: number | string;
  restart_delay?: number;
  exp_backoff_restart_delay?: number;
  out_file?: string;
  error_file?: string;
  merge_logs?: boolean;
  log_date_format?: string;
  time?: boolean;
  namespace?: string;
  /** With a script: the processes join a running app of that name. */
  force?: boolean;
  /** Any other PM2 app key; unknown ones are warned about. */
  [key: string]: unknown;
}

/** Options for apps given as an object, an array or an ecosystem file. */
export interface AppsOptions {
  /** The environment to use: `env_<name>` of each app. */
  env?: string;
  /** Only these apps (names separated by commas). */
  only?: string;
}

export interface RestartOptions extends AppsOptions {
  /** The processes get this process's environment (`--update-env`). */
  updateEnv?: boolean;
}

export interface ReloadOptions extends RestartOptions {
  /** Instances replaced at the same time. */
  parallel?: number;
}

/** What PM2 keeps for a process (`pm2_env`). */
export interface Pm2Env {
  name?: string;
  namespace?: string;
  pm_id?: number;
  status?: 'online' | 'stopping' | 'stopped' | 'launching' | 'errored' | 'waiting restart';
  pm_uptime?: number;
  restart_time?: number;
  unstable_restarts?: number;
  exec_mode?: 'fork_mode' | 'cluster_mode';
  instances?: number;
  pm_exec_path?: string;
  pm_cwd?: string;
  pm_out_log_path?: string;
  pm_err_log_path?: string;
  pm_pid_path?: string;
  env?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A process as PM2's `list` and `describe` give it. */
export interface ProcessDescription {
  name?: string;
  pid?: number;
  pm_id?: number;
  monit?: { memory?: number; cpu?: number };
  pm2_env?: Pm2Env;
}

/** What `stop`, `restart`, `reload` and `delete` call back with. */
export interface ProcessResult extends ProcessDescription {
  namespace?: string;
  status?: Pm2Env['status'];
  restart_time?: number;
}

export interface ProcessEvent {
  event: 'start' | 'online' | 'exit' | 'restart' | 'reload' | 'stop' | 'delete' | 'restart overlimit';
  /** Caused by a command rather than by the process itself. */
  manually: boolean;
  /** The process's `pm2_env`, without `env`. */
  process: Pm2Env;
  /** Milliseconds since the Unix epoch. */
  at: number;
}

export interface LogPacket {
  process: { pm_id: number; name: string; rev: null; namespace: string };
  at: number;
  /** What the process wrote in one read: part of a line, or several. */
  data: string;
}

/** An app's uncaught exception (or unhandled rejection), before it crashed. */
export interface ExceptionPacket {
  /** The error's own properties (`message`, `stack`, an app's `code`, ...) and its `name`. */
  data: { message: string; stack?: string; name?: string; [key: string]: unknown };
  process: { pm_id: number; name: string; rev: null; namespace: string };
  /** Milliseconds since the Unix epoch. */
  at: number;
}

/** PM2's bus: a pattern with `*` gets what it matched first. */
export interface Bus extends EventEmitter {
  on(event: 'process:event', listener: (packet: ProcessEvent) => void): this;
  on(event: 'log:out' | 'log:err', listener: (packet: LogPacket) => void): this;
  on(event: 'process:exception', listener: (packet: ExceptionPacket) => void): this;
  /** Not PM2's: this bus fell behind and missed `count` events. */
  on(event: 'rsup:dropped', listener: (packet: { count: number }) => void): this;
  /** The bus was closed: `close()`, `disconnect()` or `killDaemon()`. */
  on(event: 'close', listener: () => void): this;
  on(pattern: string, listener: (...args: any[]) => void): this;
  /** Ends the subscription and its reconnecting. */
  close(): void;
}

/**
 * The bus's connection, as PM2's third `launchBus` argument: a bus whose
 * daemon went away (stopped, or replaced by `rsup update`) connects again,
 * forever, without starting one.
 */
export interface BusSocket extends EventEmitter {
  on(event: 'reconnect attempt' | 'connect' | 'close', listener: () => void): this;
}

export interface CustomOptions {
  /** Where relative scripts and files are found. */
  cwd?: string;
  /** The daemon's folder (as RSUP_HOME). */
  pm2_home?: string;
  rsup_home?: string;
}

export interface API {
  /** Starts the daemon if it does not run. */
  connect(cb: Callback<{ pid: number; version: string }>): void;
  connect(noDaemonMode: boolean, cb: Callback<{ pid: number; version: string }>): void;
  /** Closes the buses this API opened, so the process can exit. */
  disconnect(cb?: Callback<{}>): void;
  close(cb?: Callback<{}>): void;
  /** A script with its options, an ecosystem file, apps, or processes to start again. */
  start(options: StartOptions | StartOptions[] | { apps: StartOptions[] }, cb?: Callback<ProcessDescription[]>): void;
  start(
    options: StartOptions | StartOptions[] | { apps: StartOptions[] },
    appsOptions: AppsOptions,
    cb?: Callback<ProcessDescription[]>,
  ): void;
  start(script: string, cb?: Callback<ProcessDescription[]>): void;
  start(script: string, options: StartOptions | AppsOptions, cb?: Callback<ProcessDescription[]>): void;
  restart(target: string | number | StartOptions | StartOptions[], cb?: Callback<ProcessResult[]>): void;
  restart(target: string | number | StartOptions | StartOptions[], options: RestartOptions, cb?: Callback<ProcessResult[]>): void;
  reload(target: string | number | StartOptions | StartOptions[], cb?: Callback<ProcessResult[]>): void;
  reload(target: string | number | StartOptions | StartOptions[], options: ReloadOptions, cb?: Callback<ProcessResult[]>): void;
  stop(target: string | number, cb?: Callback<ProcessResult[]>): void;
  delete(target: string | number, cb?: Callback<ProcessResult[]>): void;
  list(cb: Callback<ProcessDescription[]>): void;
  /** The processes with this id or name; an empty list when there are none. */
  describe(target: string | number, cb: Callback<ProcessDescription[]>): void;
  /** The ids of the processes of the app `name`. */
  getProcessIdByName(name: string, cb: Callback<number[]>): void;
  /** Runs `count` instances (`'+N'`: N more, `'-N'`: N fewer). */
  scale(name: string, count: number | string, cb?: Callback<ProcessResult[]>): void;
  /** Writes the running apps for `resurrect`; an error when none runs, unless `force`. */
  dump(cb?: Callback<{ success: boolean }>): void;
  dump(force: boolean, cb?: Callback<{ success: boolean }>): void;
  /** Starts the dumped apps that do not run. */
  resurrect(cb?: Callback<ProcessDescription[]>): void;
  /** Empties the dump. */
  clearDump(cb?: Callback<undefined>): void;
  /** Starts the daemon if it does not run. */
  ping(cb?: Callback<{ msg: 'pong' }>): void;
  /** The daemon's version. */
  getVersion(cb: Callback<string>): void;
  /** Stops every app, then the daemon. */
  killDaemon(cb?: Callback<{}>): void;
  kill(cb?: Callback<{}>): void;
  launchBus(cb: (err: Error | null, bus: Bus, socket: BusSocket) => void): void;
}

export const connect: API['connect'];
export const disconnect: API['disconnect'];
export const close: API['close'];
export const start: API['start'];
export const restart: API['restart'];
export const reload: API['reload'];
export const stop: API['stop'];
declare const del: API['delete'];
export { del as delete };
export const list: API['list'];
export const describe: API['describe'];
export const killDaemon: API['killDaemon'];
export const kill: API['kill'];
export const launchBus: API['launchBus'];
export const getProcessIdByName: API['getProcessIdByName'];
export const scale: API['scale'];
export const dump: API['dump'];
export const resurrect: API['resurrect'];
export const clearDump: API['clearDump'];
export const ping: API['ping'];
export const getVersion: API['getVersion'];
/** Another API: another daemon folder or cwd. */
export const custom: new (opts?: CustomOptions) => API;

declare const pm2: API & { custom: typeof custom };
export default pm2;
