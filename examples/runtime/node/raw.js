// Raw HTTP entry script: run(request) sees the method, path and bytes, and answers { status, body }.
exports.raw = true;
exports.run = (req) => {
  if (req.method === 'GET') return { status: 200, body: req.fullPath };
  return { status: 201, body: Buffer.from(req.body).reverse(), headers: { 'x-script': 'raw' } };
};
