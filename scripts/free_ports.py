"""Print N free TCP ports on 127.0.0.1, each with port+10000 also free (SeaweedFS's gRPC offset)."""
import socket
import sys


def free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main() -> None:
    want = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    found = []
    port = 21000 + (hash(str(sys.argv)) % 3000)
    while len(found) < want and port < 40000:
        if free(port) and free(port + 10000):
            found.append(port)
        port += 7
    print(" ".join(map(str, found)))


if __name__ == "__main__":
    main()
