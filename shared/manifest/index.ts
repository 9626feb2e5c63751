export * from './names';
export * from './schema';
export * from './training';
