export * from './models';
export { versionRowKey } from "./versioned";
export { UsageIndex } from "./usage";
