/** Activity: is `incoming/<folder>/<onnxFile>` still the only file of its folder (see orchestrations/deployLoneOnnx.ts)? */
import { DEPLOY } from '../shared/deploy/contract';
import { getAppServices } from '../shared/services/app';
import { isLoneOnnx } from '../shared/deploy/start-run';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.checkLoneOnnx, (input) => isLoneOnnx(getAppServices().storage, input.folder, input.onnxFile));
