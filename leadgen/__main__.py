from leadgen.cli import main

main()
