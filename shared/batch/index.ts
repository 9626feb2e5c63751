/**
 * Batch scoring, the domain half: job definition, input planning, scoring one mini-batch,
 * thresholds, merge + summary, progress. Activities call these; orchestrations only use the pure parts
 * (`ThresholdTracker`, `computeProgress`, `chunkOf`, `PLAN_CHUNK_SIZE`).
 */
export * from './job';
export * from './size';
export * from './layout';
export * from './plan';
export * from './tabular';
export * from './thresholds';
export * from './results';
export * from './score';
export * from './merge';
export * from './progress';
export * from './pool-local';
export * from './pools';
export * from './run';
export * from './contract';
