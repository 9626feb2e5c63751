export * from '../registry/services';
export * from '../deploy/steps';
export * from './app';
export * from '../deploy/run-status';
export * from '../deploy/start-run';
export * from '../deploy/restore';
