// Node entry script: init() once, run(input) with the parsed JSON body; samples give /swagger.json.
let factor;
exports.init = async () => {
  factor = Number(process.env.FACTOR || 3);
};
exports.run = (input) => ({ result: input.data.map((x) => x * factor), pid: process.pid });
exports.inputSample = { data: [1, 2, 3] };
exports.outputSample = { result: [3, 6, 9] };
