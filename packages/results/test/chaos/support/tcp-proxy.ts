import { once } from 'node:events'
import net from 'node:net'

/** A TCP proxy in front of a PostgreSQL server that can cut its connections off as a partition would. */
export interface TcpProxy {
  /** The given URL, pointing at the proxy instead of the server. */
  readonly url: string
  /** Connections accepted so far: each is one attempt of a client to connect. */
  readonly acceptedConnections: number
  /** Local ports of the proxy's open connections to the server: `client_port` in pg_stat_activity. */
  serverSidePorts(): number[]
  /**
   * Stops forwarding in both directions without closing anything: reading pauses, so bytes wait in the
   * socket buffers as on a partitioned network, and neither end sees an error or an end. With
   * `afterClientSends`, waits for a client to send bytes containing that text (say the name of a function
   * it calls inside a transaction), forwards them, and cuts right after: the server runs that statement
   * and its session then waits for the rest of the transaction. Resolves once cut.
   */
  blackhole(options?: { afterClientSends?: string }): Promise<void>
  /** Forwards again, including what waited. */
  heal(): void
  /** Destroys every connection and stops listening. */
  close(): Promise<void>
}

interface Pair {
  client: net.Socket
  upstream: net.Socket
}

/** Starts a proxy on 127.0.0.1 (a free port) to the host and port of `targetUrl`, a TCP PostgreSQL URL. */
export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl)
  const targetHost = target.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  const targetPort = Number(target.port || 5432)
  const pairs = new Set<Pair>()
  let isBlackholed = false
  let cutAfter: { text: string; cut: () => void } | undefined

  const cut = () => {
    isBlackholed = true
    cutAfter = undefined
    for (const { client, upstream } of pairs) {
      client.pause()
      upstream.pause()
    }
  }

  /** Copies `from` to `to`, honouring backpressure, and never reads while blackholed. */
  const forward = (from: net.Socket, to: net.Socket, isFromClient: boolean) => {
    from.on('data', (chunk: Buffer) => {
      const isCutPoint = isFromClient && cutAfter !== undefined && chunk.includes(cutAfter.text)
      if (!to.write(chunk)) {
        from.pause()
        to.once('drain', () => {
          if (!isBlackholed) from.resume()
        })
      }
      if (isCutPoint) cutAfter!.cut()
    })
    // An end is passed on after what came before it; a broken socket breaks the other.
    from.on('end', () => to.end())
    from.on('error', () => to.destroy())
  }

  let accepted = 0
  const server = net.createServer((client) => {
    accepted += 1
    const upstream = net.connect({ host: targetHost, port: targetPort })
    const pair: Pair = { client, upstream }
    pairs.add(pair)
    client.on('close', () => pairs.delete(pair))
    forward(client, upstream, true)
    forward(upstream, client, false)
    // A connection made during the partition hangs too: its startup waits with everything else.
    if (isBlackholed) {
      client.pause()
      upstream.pause()
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  const url = new URL(targetUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)

  return {
    url: url.toString(),
    get acceptedConnections() {
      return accepted
    },
    serverSidePorts: () => [...pairs].flatMap((pair) => (pair.upstream.localPort === undefined || pair.upstream.destroyed ? [] : [pair.upstream.localPort])),
    blackhole: ({ afterClientSends } = {}) => {
      if (afterClientSends === undefined) {
        cut()
        return Promise.resolve()
      }
      return new Promise<void>((resolve) => {
        cutAfter = {
          text: afterClientSends,
          cut: () => {
            cut()
            resolve()
          },
        }
      })
    },
    heal: () => {
      isBlackholed = false
      cutAfter = undefined
      for (const { client, upstream } of pairs) {
        client.resume()
        upstream.resume()
      }
    },
    close: async () => {
      for (const { client, upstream } of pairs) {
        client.destroy()
        upstream.destroy()
      }
      server.close()
      await once(server, 'close')
    },
  }
}
