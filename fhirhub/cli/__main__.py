from fhirhub.cli import main

main()
