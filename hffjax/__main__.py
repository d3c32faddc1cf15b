from hffjax.main import main

main()
