export * from './models';
export { versionRowKey } from './versioned';
