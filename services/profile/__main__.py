from services.profile.app import main

main()
