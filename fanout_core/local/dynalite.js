// dynalite as its CLI starts it (for the tests, the benchmarks and `fanout serve`), with one
// fix: a client that hangs up mid-request (a process killed during a call, a client-side
// timeout) makes dynalite 4.0.0 rethrow ECONNRESET from the request's 'error' handler, which
// kills the server and fails every later call with "connection refused". Swallow only that.
'use strict'
const dynalite = require('dynalite')

const [host, port] = process.argv.slice(2)

process.on('uncaughtException', (err) => {
  if (err && err.code === 'ECONNRESET') {
    console.error(`dynalite: a client aborted its request (${err.message}); still serving`)
    return
  }
  console.error(err)
  process.exit(1)
})

const server = dynalite({ createTableMs: 0 }).listen(Number(port), host, () => {
  console.log(`dynalite listening at http://${host}:${server.address().port}`)
})
