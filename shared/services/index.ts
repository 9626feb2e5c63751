export * from './registry';
export * from './deploy';
export * from './app';
