export * from './registry';
export * from './deploy';
