from rag_backend.cli import main

main()
