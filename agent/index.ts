/** The mfpsync library API for firmware: create an agent, read and write items, follow its events. */
export { Agent, parseAddress, ROLES, type AgentEvents, type AgentOptions, type ItemChangedEvent, type Role, type SyncStateEvent } from './agent.js';
export { type DeepSleepEvent, type DeviceStateEvent, type JoinProgressEvent, type PowerClientEntry, type PowerStatus } from './agent.js';
export { LOGIN_AGAIN_MESSAGE, type LoginAgainEvent } from './client.js';
export { ManualClock, systemClock, type Clock } from './clock.js';
export { initDataDir, resolveDataDir, setDepartmentIds, type InitOptions } from './config.js';
export { callControl } from './control.js';
export { startDaemon, type Daemon } from './daemon.js';
export { keepYoungGenerationSmall } from './heap.js';
export { CATALOG, type CatalogItem, type ItemKind } from '../storage/catalog.js';
export { ERROR_CODES, MfpError, type ErrorCode } from '../protocol/errors.js';
