"""A listener that accepts connections and never answers: a hung storage endpoint or origin.

  blackhole.py PORT        prints "listening" once it accepts, and records what arrives"""
import socket
import sys
import threading


def hold(conn: socket.socket) -> None:
    with conn:
        while conn.recv(65536):
            pass


def main() -> None:
    server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=hold, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
