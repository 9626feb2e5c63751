/** Activity: is `incoming/<folder>/<onnxFile>` still the only file of its folder (see orchestrations/deployLoneOnnx.ts)? */
import * as df from 'durable-functions';
import { getAppServices } from '../shared/services/app';
import { isLoneOnnx } from '../shared/services/triggers';

df.app.activity('checkLoneOnnx', {
  handler: (input: { folder: string; onnxFile: string }) => isLoneOnnx(getAppServices().storage, input.folder, input.onnxFile),
});
