# Prepares a fresh Redmine (Debian's package, SQLite) for the callcenter's tests:
#   RAILS_ENV=production DATABASE_URL=sqlite3:PATH ruby bin/rails runner PATH/setup.rb
# from /usr/share/redmine. Idempotent. Prints one JSON line with what it made: the REST API
# enabled, an API key for the service's user and one for a staff member who answers, a
# project with a tracker, the statuses (one of them "answered") and the ticket custom field.
require 'json'

Setting.rest_api_enabled = '1'
Setting.default_language = 'ru'

def user(login, first, last, mail)
  u = User.find_by(login: login) || User.new(firstname: first, lastname: last, mail: mail)
  u.login = login
  u.admin = true
  u.status = User::STATUS_ACTIVE
  u.password = u.password_confirmation = 'Callcenter-test-1'
  u.must_change_passwd = false
  u.save!
  u
end

service = user('callcenter', 'Колл', 'Центр', 'callcenter@example.test')
staff = user('staff', 'Анна', 'Поддержкина', 'staff@example.test')

IssuePriority.find_by(name: 'Обычный') || IssuePriority.create!(name: 'Обычный', is_default: true)
statuses = %w[Новая Отвечена Закрыта].map do |name|
  IssueStatus.find_by(name: name) || IssueStatus.create!(name: name, is_closed: name == 'Закрыта')
end
tracker = Tracker.find_by(name: 'Поддержка') ||
          Tracker.create!(name: 'Поддержка', default_status: statuses.first)
role = Role.find_by(name: 'Инженер поддержки') ||
       Role.create!(name: 'Инженер поддержки', permissions: %i[view_issues add_issues edit_issues add_issue_notes])
statuses.each do |from|
  statuses.each do |to|
    next if from == to
    WorkflowTransition.find_or_create_by!(tracker_id: tracker.id, role_id: role.id,
                                          old_status_id: from.id, new_status_id: to.id)
  end
end
field = IssueCustomField.find_by(name: 'Callcenter ticket') ||
        IssueCustomField.new(name: 'Callcenter ticket', field_format: 'string')
field.is_filter = true
field.searchable = true
field.is_for_all = true
field.visible = true
field.tracker_ids = (field.tracker_ids | [tracker.id])
field.save!
project = Project.find_by(identifier: 'support') ||
          Project.new(name: 'Техподдержка', identifier: 'support', is_public: false)
project.tracker_ids = (project.tracker_ids | [tracker.id])
project.enabled_module_names = %w[issue_tracking]
project.save!
[service, staff].each do |u|
  next if Member.find_by(project_id: project.id, user_id: u.id)
  Member.create!(project: project, principal: u, role_ids: [role.id])
end
# a second project without the tracker, for the checks that must say so
other = Project.find_by(identifier: 'other') ||
        Project.create!(name: 'Другой', identifier: 'other', is_public: false,
                        enabled_module_names: %w[issue_tracking])

puts JSON.generate(
  service_key: service.api_key, staff_key: staff.api_key, staff_id: staff.id,
  service_id: service.id, project: project.identifier, tracker: tracker.name,
  answered_status: 'Отвечена', field_id: field.id
)
