export * from '../registry/services';
export * from './deploy';
export * from './app';
export * from './run';
export * from './triggers';
export * from './restore';
