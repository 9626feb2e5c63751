/** The module object `require('@azure/functions-core')` returns under the local host (see functionsCore.ts). */
import { coreState } from './functionsCore';

export = coreState().api;
